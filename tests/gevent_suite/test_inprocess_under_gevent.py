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
from servecmp.load.clients import Outcome, call, make_client
from servecmp.load.payloads import PayloadSet


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


def test_users_share_a_pool_of_workers_instances(tmp_path: Path) -> None:
    """Like a server with `workers` model instances: every client of the process shares them,
    calls run on native threads (the greenlets wait cooperatively), and each call uses one of
    exactly `workers` instances."""
    w = TinyWeights.seeded()
    pt = write_torchscript(w, tmp_path / "model.pt")
    payloads = PayloadSet.build(TinySpec(), 1234, 2, 3, expected=w.logits)  # type: ignore[arg-type]
    target = Target(server="pytorch", protocol="inprocess")
    clients = [
        make_client(target, str(pt), payloads, 5.0, intra_op_threads=1, workers=2) for _ in range(4)
    ]
    pool = clients[0]._pool  # type: ignore[attr-defined]
    assert all(c._pool is pool for c in clients) and pool.workers == 2  # type: ignore[attr-defined]
    assert clients[0].threads_effective == 1  # the budget as seen from a pool thread
    used: set[int] = set()
    inner = pool._on_instance

    def spy(fn):
        return inner(lambda inst: (used.add(id(inst)), fn(inst))[1])

    pool._on_instance = spy
    jobs = [gevent.spawn(lambda c=c: [call(c, i) for i in range(12)]) for c in clients]
    gevent.joinall(jobs, raise_error=True)
    assert all(o is Outcome.ok for j in jobs for o in j.value)
    assert len(used) == 2  # both instances served, and no third one exists
    assert pool._pool is not None and pool._pool.maxsize == 2  # a gevent ThreadPool: native threads
