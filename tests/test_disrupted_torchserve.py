"""Disrupted steps against a REAL TorchServe (issue 11): killing its Python worker mid-step
used to leave a "valid" step at half the throughput with one error. The step must now say
that the server's process tree changed (the worker exited, TorchServe started a new one) and
stay out of comparisons; an undisturbed step next to it must not be marked."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from servecmp.experiment import Load, Stability, Target
from servecmp.load.engine.runner import run_step
from servecmp.load.engine.spec import StepSpec
from servecmp.load.payloads import PayloadSet

pytestmark = [pytest.mark.slow, pytest.mark.torchserve]

MODEL = "tiny"
RAW = Target(server="torchserve", protocol="rest", encoding="raw")
LOAD = Load(
    warmup_s=0.5, stability=Stability(window_s=1.0, windows=2, max_windows=4, tolerance=0.25)
)


def _worker(root: int) -> psutil.Process:
    """TorchServe's Python model worker: a python process under the JVM."""
    for p in psutil.Process(root).children(recursive=True):
        if "python" in p.name() and any("model_service_worker" in a for a in p.cmdline()):
            return p
    raise AssertionError("no TorchServe worker process found")


def _requests_served(metrics_url: str) -> float:
    """TorchServe's REST inference requests so far (its Prometheus counter, every model)."""
    text = requests.get(metrics_url, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ts_inference_requests_total{")
    )


def test_worker_killed_mid_step_marks_the_step_disrupted(
    local_torchserve: Any, tmp_path: Path
) -> None:
    from servecmp.models.registry import DEFAULT_SEED, get_model

    server = local_torchserve(MODEL)
    payloads = str(
        PayloadSet.build(get_model(MODEL), 99, 1, 4, weights_seed=DEFAULT_SEED).save(tmp_path)
    )
    root = server.process.pid

    def spec(step_id: str) -> StepSpec:
        pids = [p.pid for p in server.process.tree()]
        return StepSpec(
            run_id="t",
            step_id=step_id,
            target=RAW,
            address=server.endpoints.rest,
            sweep="closed_loop",
            mode="closed_loop",
            concurrency=2,
            load=LOAD,
            payloads_path=payloads,
            server_pids=pids,
        )

    calm = run_step(spec("calm"), tmp_path)
    assert calm.ok > 0 and calm.disrupted is None, calm.disrupted

    worker = _worker(root)
    name = worker.name()
    served = _requests_served(server.endpoints.metrics_url)

    def kill_under_load() -> None:
        # Once the step's requests reach the server, its process tree was read (the step reads
        # it before its clients connect): the kill lands inside the step however long the step
        # process took to start (a fixed 3 s wait fell before it on a loaded machine).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _requests_served(server.endpoints.metrics_url) >= served + 10:
                break
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_under_load)
    killer.start()
    try:
        hit = run_step(spec("worker-killed"), tmp_path)
    finally:
        killer.join()
    assert not worker.is_running()
    assert hit.disrupted is not None, hit
    # the killed worker (and, if TorchServe restarted it before the step ended, its successor)
    assert f"exited: {name} (pid {worker.pid})" in hit.disrupted
    assert not hit.comparable
