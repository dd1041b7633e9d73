"""Disruptions under a steady trickle of load: a model update (v1 → v2) and a killed server.

A background sender issues requests at a fixed, modest rate — bounded in time AND count, and
stopping by itself — and records, per request, when it was sent, whether it failed and which
model version's logits it matched, and when its answer (or failure) came back. From that timeline
we read: failed requests during the disruption and seconds until the new state has answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from servecmp.load.clients.base import TargetClient, TransportError


@dataclass
class Sample:
    t: float  # seconds since the sender started, when the request was sent
    ok: bool
    version: str | None  # "v1", "v2" or None (failed / matched neither)
    error: str | None
    # when the answer or failure came back (same clock): a restarted server's first answer may
    # take seconds (model warm-up), and "answering again" means the answer has arrived
    done: float = 0.0


@dataclass
class TrickleLoad:
    """Sends ``rate`` req/s through ``client_factory()`` until stopped or ``max_s`` / ``max_requests``."""

    client_factory: Callable[[], TargetClient]
    expected: dict[str, np.ndarray]  # version -> expected logits [N, B, classes]
    atol: float
    rate: float = 20.0
    max_s: float = 120.0
    max_requests: int = 10_000
    # senders, each with its own client, paced at rate / senders (requests in flight at most)
    senders: int = 1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    t0: float = 0.0

    def start(self) -> TrickleLoad:
        self.t0 = time.monotonic()
        for k in range(self.senders):
            t = threading.Thread(target=self._run, args=(k,), name=f"trickle-{k}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _match(self, index: int, logits: np.ndarray) -> str | None:
        for version, exp in self.expected.items():
            e = exp[index % len(exp)]
            if logits.shape == e.shape and float(np.max(np.abs(logits - e))) <= self.atol:
                return version
        return None

    def _run(self, sender: int = 0) -> None:
        client: TargetClient | None = None
        period = self.senders / self.rate
        offset = sender / self.rate  # the senders' sends interleave evenly
        for i in range(sender, self.max_requests, self.senders):
            if self._stop.is_set() or self.now() > self.max_s:
                break
            t = self.now()
            try:
                if client is None:
                    client = self.client_factory()
                idx = client.payloads.index(i)  # cycle through the distinct payloads
                logits = client.send(idx)
                v = self._match(idx, logits)
                self.samples.append(
                    Sample(t, v is not None, v, None if v else "wrong_answer", self.now())
                )
            except TransportError as err:
                self.samples.append(Sample(t, False, None, err.kind, self.now()))
                # A fresh connection after a failure, as a real client would reconnect.
                if client is not None:
                    client.close()
                client = None
            sleep = offset + (i // self.senders + 1) * period - self.now()
            if sleep > 0:
                self._stop.wait(sleep)
        if client is not None:
            client.close()

    def hold(self, seconds: float) -> None:
        """Keep the load on for ``seconds`` (returns early once stopped)."""
        self._stop.wait(max(0.0, seconds))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def wait_for(self, pred: Callable[[Sample], bool], timeout_s: float) -> Sample | None:
        """The first sample matching ``pred`` within ``timeout_s``, or None."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for s in self.samples[seen:]:
                if pred(s):
                    return s
            seen = len(self.samples)
            time.sleep(0.05)
        return None

    def failures_between(self, t_from: float, t_to: float) -> int:
        return sum(1 for s in self.samples if t_from <= s.t <= t_to and not s.ok)

    def summary(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "requests": len(self.samples),
            "failed": sum(1 for s in self.samples if not s.ok),
            # [sent, ok, version, error, answered] per request, seconds on the sender's clock
            "timeline": [
                [round(s.t, 4), s.ok, s.version, s.error, round(s.done, 4)] for s in self.samples
            ],
        }
