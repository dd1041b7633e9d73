"""In-process baselines inside a gevent-patched (Locust) process: several users (greenlets) each
make a client and every answer is correct — TensorFlow's per-thread eager context would
otherwise put later greenlets in graph mode."""

from __future__ import annotations

import sys
from pathlib import Path

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for doubles

from doubles.tiny_artifacts import TinySpec, TinyWeights, write_savedmodel, write_torchscript

from servecmp.experiment import Target
from servecmp.loadtests.clients import Outcome, call, make_client
from servecmp.loadtests.payloads import PayloadSet


def _users(target: Target, address: str, payloads: PayloadSet, n: int = 3) -> list[list[Outcome]]:
    # TF's thread count is fixed once its runtime starts (writing the SavedModel started it).
    threads = None if target.server == "tensorflow" else 1

    def user() -> list[Outcome]:
        with make_client(target, address, payloads, 5.0, intra_op_threads=threads) as client:
            return [call(client, i) for i in range(len(payloads))]

    jobs = [gevent.spawn(user) for _ in range(n)]
    gevent.joinall(jobs, raise_error=True)
    return [j.value for j in jobs]


def test_tensorflow_inprocess_from_several_greenlets(tmp_path: Path) -> None:
    w = TinyWeights.seeded()
    sm = write_savedmodel(w, tmp_path / "sm" / "1")
    payloads = PayloadSet.build(TinySpec(), 1234, 2, 3, expected=w.logits)  # type: ignore[arg-type]
    results = _users(Target(server="tensorflow", protocol="inprocess"), str(sm), payloads)
    assert all(o is Outcome.ok for r in results for o in r), results


def test_pytorch_inprocess_from_several_greenlets(tmp_path: Path) -> None:
    w = TinyWeights.seeded()
    pt = write_torchscript(w, tmp_path / "model.pt")
    payloads = PayloadSet.build(TinySpec(), 1234, 2, 3, expected=w.logits)  # type: ignore[arg-type]
    results = _users(Target(server="pytorch", protocol="inprocess"), str(pt), payloads)
    assert all(o is Outcome.ok for r in results for o in r), results
