"""Where a step's time goes: the client's mean latency split into outside the server, queue,
pre/post-processing and model compute, from the server's own counters read at each window's
start and end (``ServerMetrics.breakdown``, declared per server in its metrics.py).

Means, not quantiles: means of the parts add up to the mean total; quantiles do not. A part the
server does not report is kept as "not reported by <server>" (``ms`` None), never as zero.

Self-check: the server's own time per request must not exceed what the client saw beyond the
noise of the client's mean (3 standard errors of the window's ok samples) plus the requests a
window's edges split between client and server (those in flight at either edge). A server that
exceeds it is flagged and its "outside" is left out, never plotted as negative. So is a server
whose own request count over the windows cannot be this client's requests (other traffic, or a
scrape that reached another process's registry: KServe with several REST workers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from servecmp.results.schema import Breakdown, BreakdownPart
from servecmp.servers.base import BREAKDOWN_PARTS, PartSource, Series

# A server's counters print with limited precision (TF Serving: absl StrCat of a double, six
# significant digits, util/prometheus_exporter.cc): each reading may be off by this fraction.
READ_PRECISION = 5e-6
NOISE_SE = 3.0  # standard errors of the client's mean


def key(s: Series) -> str:
    if not s.match:
        return s.name
    return s.name + "{" + ",".join(f'{k}=~"{v}"' for k, v in s.match) + "}"


def read_counters(text: str, series: Iterable[Series]) -> dict[str, float]:
    """Each series' value in a Prometheus text page: the sum of the samples whose name (a
    counter's with or without the ``_total`` the parser adds) and labels match. A series with no
    matching sample is absent from the result (not exposed), never 0."""
    wanted = {key(s): s for s in series}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            for k, s in wanted.items():
                if sample.name not in (s.name, s.name + "_total"):
                    continue
                if all(re.fullmatch(rx, sample.labels.get(label, "")) for label, rx in s.match):
                    out[k] = out.get(k, 0.0) + float(sample.value)
    return out


def window_deltas(
    readings: Sequence[tuple[Mapping[str, float], Mapping[str, float]]],
) -> tuple[dict[str, float], dict[str, float], str | None]:
    """(delta per series over the windows, reading error per series, why there is none).

    A series absent at any reading is left out. A counter that went backwards (the server
    restarted inside a window) makes the whole read unusable."""
    if not readings:
        return {}, {}, "no window read the server's counters"
    keys = set(readings[0][0])
    for start, end in readings:
        keys &= set(start) & set(end)
    deltas: dict[str, float] = {}
    err: dict[str, float] = {}
    for k in keys:
        d = 0.0
        e = 0.0
        for start, end in readings:
            step = end[k] - start[k]
            e += READ_PRECISION * (abs(end[k]) + abs(start[k]))
            if step < -READ_PRECISION * abs(start[k]):
                return {}, {}, f"{k} went backwards inside a window (the server restarted)"
            d += step
        deltas[k], err[k] = max(0.0, d), e
    return deltas, err, None


@dataclass(frozen=True)
class ClientSide:
    """The client's view of the reported windows."""

    mean_ms: float | None
    sd_ms: float | None
    n: int  # ok samples
    in_flight: int  # requests in flight at a window edge (concurrency, or open loop's peak)
    completed: int | None = None  # every answered request, failed ones included
    windows: int = 1  # each window's two edges split requests between client and server

    def edge_requests(self) -> int:
        return 2 * self.in_flight * max(1, self.windows) + 2

    def count_mismatch(self, counted: float) -> str | None:
        """Why ``counted`` (the server's own request count over the windows) cannot be the
        requests this client sent (other traffic, or a scrape seeing another process's
        registry), beyond the requests a window's edges split; None when it can."""
        edge = self.edge_requests()
        low, high = self.n - edge, (self.completed or self.n) + edge
        if low * 0.95 <= counted <= high * 1.05:
            return None
        return (
            f"the server counted {counted:.0f} requests in the windows, the client "
            f"{self.n} ok of {self.completed or self.n}: its counters do not cover these requests"
        )

    def noise_ms(self) -> float:
        if self.mean_ms is None or self.n == 0:
            return math.inf
        se = (self.sd_ms or 0.0) / math.sqrt(self.n)
        edge = self.mean_ms * min(1.0, self.edge_requests() / self.n)
        return NOISE_SE * se + edge


def _mean_ms(
    src: PartSource, deltas: Mapping[str, float], err: Mapping[str, float]
) -> tuple[float | None, float, str | None]:
    """(mean ms per request, its reading error in ms, why none)."""
    assert src.count is not None
    missing = [s.name for s in src.series() if key(s) not in deltas]
    if missing:
        return None, 0.0, f"{', '.join(sorted(set(missing)))} not exposed"
    n = deltas[key(src.count)]
    if n <= 0:
        return None, 0.0, f"{src.count.name} counted no request in the windows"
    t = sum(deltas[key(s)] for s in src.time) - sum(deltas[key(s)] for s in src.minus)
    e = sum(err[key(s)] for s in (*src.time, *src.minus))
    scale = src.scale_s * 1000.0 / n
    return t * scale, e * scale, None


def compute(
    parts: Mapping[str, PartSource],
    *,
    server_label: str,
    protocol: str,
    client: ClientSide,
    readings: Sequence[tuple[Mapping[str, float], Mapping[str, float]]] | None,
    read_error: str | None = None,
) -> Breakdown | None:
    """The step's breakdown from its reported windows' counter readings; None when the server
    declares none."""
    if not parts:
        return None
    nr = f"not reported by {server_label}"
    if any(p.client_clock for p in parts.values()):
        return _inprocess(parts, client)

    def absent(name: str, why: str) -> BreakdownPart:
        src = parts.get(name)
        return BreakdownPart(
            part=name,
            ms=None,
            source=src.metric if src else "",
            why=why,
            note=src.note if src else "",
        )

    total_src = parts.get("total")
    off = [p for p in (total_src,) if p and p.protocols and protocol not in p.protocols]
    if off or total_src is None:
        why = f"{nr} over {protocol}" if off else f"{nr}: no total of its own"
        return Breakdown(
            client_mean_ms=client.mean_ms,
            client_n=client.n,
            noise_ms=_finite(client.noise_ms()),
            parts=[absent(p, why) for p in ("outside", *BREAKDOWN_PARTS)],
            not_reported=why,
        )
    deltas, err, why_none = window_deltas(readings or [])
    why_none = why_none or _stale(total_src, deltas, client, server_label)
    if read_error or why_none:
        why = f"server counters not read: {read_error or why_none}"
        return Breakdown(
            client_mean_ms=client.mean_ms,
            client_n=client.n,
            noise_ms=_finite(client.noise_ms()),
            parts=[absent(p, why) for p in ("outside", *BREAKDOWN_PARTS)],
            not_reported=why,
        )
    noise = client.noise_ms()
    total, total_err, total_why = _mean_ms(total_src, deltas, err)
    out: dict[str, BreakdownPart] = {}
    read_err = total_err
    for name in BREAKDOWN_PARTS:
        src = parts.get(name)
        if src is None:
            out[name] = absent(name, nr)
        elif src.protocols and protocol not in src.protocols:
            out[name] = absent(name, f"{nr} over {protocol}")
        elif not src.remainder:
            ms, e, why_ms = _mean_ms(src, deltas, err)
            read_err += e
            if ms is not None:
                ms -= sum(out[p].ms or 0.0 for p in src.minus_parts if p in out)
            out[name] = BreakdownPart(
                part=name,
                ms=ms,
                source=src.metric,
                kind=src.kind,
                why=None if ms is not None else f"{nr}: {why_ms}",
                note=src.note,
            )
    flags: list[str] = []
    tol = noise + read_err
    for name, part in list(out.items()):
        if part.ms is not None and part.ms < 0:
            if part.ms < -tol:
                flags.append(
                    f"{server_label}'s {name} came out at {part.ms:.3f} ms: the parts it includes "
                    f"exceed it beyond noise ({tol:.3f} ms)"
                )
            ok = part.ms >= -tol
            out[name] = part.model_copy(
                update={"ms": 0.0 if ok else None, "why": None if ok else "the self-check failed"}
            )
    for name in BREAKDOWN_PARTS:
        src = parts.get(name)
        if src is None or not src.remainder or name in out:
            continue
        if total is None:
            out[name] = absent(name, f"{nr}: {total_why}")
            continue
        rest = total - sum(p.ms or 0.0 for p in out.values())
        if rest < -tol:
            flags.append(
                f"{server_label}'s parts ({total - rest:.3f} ms) exceed its own total "
                f"({total:.3f} ms) beyond noise ({tol:.3f} ms)"
            )
        out[name] = BreakdownPart(
            part=name,
            ms=max(0.0, rest) if rest >= -tol else None,
            source=src.metric,
            kind="derived",
            note=src.note,
        )
    counted = deltas.get(key(total_src.count)) if total_src.count else None
    mismatch = client.count_mismatch(counted) if counted is not None else None
    if mismatch and total is not None:
        flags.append(f"{server_label}: {mismatch}")
    outside: BreakdownPart
    if total is None or client.mean_ms is None:
        outside = absent("outside", f"{nr}: {total_why}" if total is None else "no ok answer")
    else:
        rest = client.mean_ms - total
        if rest < -tol:
            flags.append(
                f"{server_label}'s own time ({total:.3f} ms per request) exceeds what the client "
                f"saw ({client.mean_ms:.3f} ms) beyond noise ({tol:.3f} ms)"
            )
        outside = BreakdownPart(
            part="outside",
            ms=max(0.0, rest) if rest >= -tol else None,
            source=f"client mean - ({total_src.metric})"
            if " " in total_src.metric
            else f"client mean - {total_src.metric}",
            kind="derived",
            note="client, network and (de)serialization outside the server's own timing",
            why=None if rest >= -tol else "left out: the self-check failed",
        )
    return Breakdown(
        client_mean_ms=client.mean_ms,
        client_n=client.n,
        noise_ms=_finite(tol),
        server_total_ms=total,
        total_source=total_src.metric,
        server_requests=counted,
        means_only=all(p.kind == "mean" for p in parts.values() if not p.remainder),
        parts=[outside, *(out[n] for n in BREAKDOWN_PARTS)],
        flagged="; ".join(flags) or None,
    )


def _stale(
    total_src: PartSource, deltas: Mapping[str, float], client: ClientSide, server_label: str
) -> str | None:
    """Why the page cannot be this server's for these windows: its request counter did not move
    while the client had answers beyond the ones a window's edges split (a page that is not
    refreshed, or another process's); None otherwise. Without this its parts would read as "not
    reported by <server>", blaming the server for a page that was never current."""
    if total_src.count is None or key(total_src.count) not in deltas:
        return None
    if deltas[key(total_src.count)] > 0 or client.n <= client.edge_requests():
        return None
    return (
        f"{server_label}'s page counted no request in the windows while the client had "
        f"{client.n} ok answers: the page was stale (not refreshed) or not this server's"
    )


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _inprocess(parts: Mapping[str, PartSource], client: ClientSide) -> Breakdown:
    src = next(p for p in parts.values() if p.client_clock)
    none = "no server (in-process)"
    return Breakdown(
        client_mean_ms=client.mean_ms,
        client_n=client.n,
        noise_ms=_finite(client.noise_ms()),
        server_total_ms=client.mean_ms,
        total_source=src.metric,
        parts=[
            BreakdownPart(part="outside", ms=None, source="", why=none),
            BreakdownPart(part="queue", ms=None, source="", why=none),
            BreakdownPart(part="pre_post", ms=None, source="", why=none),
            BreakdownPart(
                part="compute", ms=client.mean_ms, source=src.metric, kind="mean", note=src.note
            ),
        ],
    )


def all_series(parts: Mapping[str, PartSource]) -> list[Series]:
    """Every series the declaration reads (once each)."""
    seen: dict[str, Series] = {}
    for p in parts.values():
        for s in p.series():
            seen.setdefault(key(s), s)
    return list(seen.values())
