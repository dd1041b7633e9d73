"""Clients under gevent (as in a Locust process), and the package/test-double boundary."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doubles.tiny_artifacts import TinySpec, TinyWeights, write_savedmodel

from servecmp.load.payloads import PayloadSet

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = ["servecmp"]  # the one package root


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from doubles.tfserving_double import TFServingDouble

    sm = write_savedmodel(TinyWeights.seeded(), tmp_path_factory.mktemp("sm") / "1")
    # 20 concurrent calls below: thread pools sized as the generated flags size them (peak in
    # flight + reserve), else the double's quota refuses some, as the real server would
    with TFServingDouble({"tiny": sm}, grpc_max_threads=32, rest_api_num_threads=32) as d:
        yield d


GEVENT_SCRIPT = """
import locust  # noqa: F401  (gevent monkey patching first, as in a Locust process)
import gevent
from servecmp.load.clients import init_gevent_grpc, Outcome, call, make_client
init_gevent_grpc()
from servecmp.experiment import Encoding, Protocol, Target
from servecmp.load.payloads import PayloadSet
ps = PayloadSet.load(RUN_DIR)
targets = [
    (Target(server="tfserving", protocol=Protocol.rest), REST),
    (Target(server="tfserving", protocol=Protocol.grpc), GRPC),
]
events = []
for target, address in targets:
    client = make_client(target, address, ps, 5.0)  # one client (one channel) shared by greenlets
    jobs = [gevent.spawn(call, client, i, fire=lambda **kw: events.append(kw)) for i in range(20)]
    gevent.joinall(jobs, timeout=60)
    outcomes = [j.value for j in jobs]
    assert outcomes == [Outcome.ok] * 20, (target.name, outcomes)
    client.close()
assert len(events) == 40
print("GEVENT-OK")
"""


@pytest.mark.load
def test_clients_work_under_gevent(double: Any, tmp_path: Path) -> None:
    ps = PayloadSet.build(TinySpec(), 5, 1, 4, expected=TinyWeights.seeded().logits)  # type: ignore[arg-type]
    ps.save(tmp_path)
    code = (
        f"RUN_DIR = {str(tmp_path)!r}; REST = {double.rest_address!r}; "
        f"GRPC = {double.grpc_address!r}\n" + GEVENT_SCRIPT
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0 and "GEVENT-OK" in proc.stdout, proc.stderr[-3000:]


def test_package_never_references_test_doubles() -> None:
    pattern = re.compile(
        r"tfserving_double|tests\.doubles|from doubles|import doubles|TFServingDouble"
    )
    offenders = [
        str(p.relative_to(REPO))
        for d in PACKAGE_DIRS
        for p in (REPO / d).rglob("*.py")
        if pattern.search(p.read_text(errors="replace"))
    ]
    assert offenders == []


def test_importing_the_clients_pulls_nothing_from_tests(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import servecmp.load.clients as c, servecmp.load.payloads\n"
        "from servecmp.load.clients import base, _http, _grpc, torchserve_rest, "
        "tfserving_rest, torchserve_grpc, tfserving_grpc, inprocess, protos\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tests', 'doubles') or 'double' in m]\n"
        "assert not bad, bad\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('doubles') is None\n"
        "print('ISOLATED')\n"
    )
    # run from an unrelated cwd so the repo's tests/ is not on sys.path by accident
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0 and "ISOLATED" in proc.stdout, proc.stderr[-3000:]
