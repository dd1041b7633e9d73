"""TF Serving's two request pools never cap the measured concurrency, and the double enforces
both as the server does (tensorflow/serving 2.20.0), so a flag rule that caps them fails here:

- gRPC: model_servers/server.cc ``ResourceQuota::SetMaxThreads(grpc_max_threads)``, default
  ``4.0 * NumSchedulableCPUs()`` (server.h); the sync server keeps one thread polling (grpc
  src/cpp/thread_manager/thread_manager.cc), so ``max - 1`` calls run and one more is refused
  with RESOURCE_EXHAUSTED before the service (or its request counter) sees it.
- REST: one pool of ``--rest_api_num_threads`` (http_server.cc ``RequestExecutor``) that also
  runs the event loop for good (util/net_http/server/internal/evhttp_server.cc
  ``StartAcceptingRequests``) and every scrape and model-status GET.

The double's ``hold`` keeps model calls waiting, so the pools are filled without timing.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from doubles.tiny_artifacts import TinyWeights, write_savedmodel

from servecmp.configgen import Placement, render_all
from servecmp.experiment import load_experiment, parse_experiment
from servecmp.servers.tfserving import config
from servecmp.servers.tfserving.config import flag_lines

X = np.full((1, 3, 8, 8), 0.5, np.float32)
QUICK = Path(__file__).resolve().parents[1] / "loadtests" / "experiments" / "quick.yaml"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfs-threads") / "tiny"
    write_savedmodel(TinyWeights.seeded(), root / "1")
    return root


def _flag(flags: list[str], name: str) -> int | None:
    """The value of ``--name=`` in the rendered command line (None: left to the server)."""
    return next((int(f.split("=", 1)[1]) for f in flags if f.startswith(f"--{name}=")), None)


def _until(cond: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def _grpc_predict(address: str) -> Any:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    req = predict_pb2.PredictRequest()
    req.model_spec.name = "tiny"
    req.inputs["input"].CopyFrom(tf.make_tensor_proto(X))
    with grpc.insecure_channel(address) as ch:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(ch).Predict(req, timeout=90)
        except grpc.RpcError as err:
            return err.code()
        return grpc.StatusCode.OK


def _ok_count(d: Any) -> int:
    return sum(n for (m, status), n in d.metrics.request_count.items() if status == "OK")


@pytest.mark.parametrize(
    ("load", "cpus", "expected"),
    [
        ({"concurrency": [1, 4]}, 1, 9),  # quick.yaml: 4 in flight + 1 poller + 4 for probes
        ({"concurrency": [1, 4, 32]}, 2, 37),
        ({"concurrency": [1]}, 4, 16),  # the server's own default, 4 x CPUs
        ({"profile": "open_loop", "rate": 50}, 1, 69),  # open loop: up to 64 in flight
    ],
)
def test_grpc_max_threads_never_cap_the_measured_concurrency(
    load: dict[str, object], cpus: int, expected: int
) -> None:
    exp = parse_experiment(
        {
            "name": "t",
            "targets": [{"server": "tfserving", "protocol": "grpc"}],
            "resources": {"cpus": cpus},
            "load": load,
        }
    )
    flags = flag_lines(render_all(exp, Placement.kubernetes()).files["tfserving"])
    assert _flag(flags, "grpc_max_threads") == expected
    assert (
        expected - config.GRPC_POLLER_THREADS >= config.peak_in_flight(exp) + config.PROBE_RESERVE
    )


def test_the_double_refuses_the_call_beyond_max_threads_minus_one_uncounted(base: Path) -> None:
    import grpc
    from doubles.tfserving_double import TFServingDouble

    hold = threading.Event()
    with (
        TFServingDouble({"tiny": base}, grpc_max_threads=4, hold=hold) as d,
        cf.ThreadPoolExecutor(4) as pool,
    ):
        try:
            running = [pool.submit(_grpc_predict, d.grpc_address) for _ in range(3)]
            assert _until(lambda: d.in_model == 3), "three calls never reached the model"
            # The 4th finds no thread left in the quota: refused at once, the service never sees it.
            assert (
                pool.submit(_grpc_predict, d.grpc_address).result(timeout=60)
                == grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            assert d.in_model == 3
        finally:
            hold.set()
        assert [f.result(timeout=90) for f in running] == [grpc.StatusCode.OK] * 3
        assert _ok_count(d) == 3 and sum(d.metrics.request_count.values()) == 3


def test_quick_yaml_grpc_concurrency_is_served_by_the_generated_quota(base: Path) -> None:
    """quick.yaml: 1 CPU, 4 calls in flight. The server's default quota (4 x 1 CPU) runs 3; the
    generated --grpc_max_threads must run all 4 (the double takes 1 schedulable CPU, as the
    pinned server sees it)."""
    from doubles.tfserving_double import TFServingDouble

    exp = load_experiment(QUICK)
    flags = flag_lines(render_all(exp, Placement.kubernetes()).files["tfserving"])
    peak, cpus = max(exp.load.concurrency), int(exp.resources.cpus)
    assert (cpus, peak) == (1, 4)
    hold = threading.Event()
    with (
        TFServingDouble(
            {"tiny": base},
            grpc_max_threads=_flag(flags, "grpc_max_threads"),
            schedulable_cpus=cpus,
            hold=hold,
        ) as d,
        cf.ThreadPoolExecutor(peak) as pool,
    ):
        try:
            calls = [pool.submit(_grpc_predict, d.grpc_address) for _ in range(peak)]
            _until(lambda: d.in_model == peak or any(f.done() for f in calls))
            refused = [f.result() for f in calls if f.done()]
            assert d.in_model == peak, f"only {d.in_model} of {peak} calls ran: {refused}"
        finally:
            hold.set()
        assert all(f.result(timeout=90).name == "OK" for f in calls)
        assert _ok_count(d) == peak


def test_the_double_loses_one_rest_thread_to_the_event_loop(base: Path) -> None:
    from doubles.tfserving_double import TFServingDouble

    hold = threading.Event()
    body = json.dumps({"instances": X.tolist()})
    with (
        TFServingDouble({"tiny": base}, rest_api_num_threads=2, hold=hold) as d,
        cf.ThreadPoolExecutor(2) as pool,
    ):
        url = f"http://{d.rest_address}"
        try:
            busy = pool.submit(
                requests.post, f"{url}/v1/models/tiny:predict", data=body, timeout=90
            )
            assert _until(lambda: d.in_model == 1)
            # 2 threads = the event loop + the held predict: the scrape has no thread left.
            scrape = pool.submit(requests.get, f"{url}{config.METRICS_PATH}", timeout=90)
            assert not _until(scrape.done, timeout_s=1.0)
        finally:
            hold.set()
        assert busy.result(timeout=90).ok and scrape.result(timeout=90).ok


def test_quick_yaml_rest_threads_hold_the_peak_and_the_probe_reserve_at_once(base: Path) -> None:
    """The generated pool runs every generator slot AND PROBE_RESERVE more requests (scrapes,
    model-status GETs, which may be slow on a loaded server) at the same time, beside the event
    loop's thread. Held predicts stand for all of them, so no timing is involved."""
    from doubles.tfserving_double import TFServingDouble

    exp = load_experiment(QUICK)
    flags = flag_lines(render_all(exp, Placement.kubernetes()).files["tfserving"])
    want = max(exp.load.concurrency) + config.PROBE_RESERVE
    hold = threading.Event()
    body = json.dumps({"instances": X.tolist()})
    with (
        TFServingDouble(
            {"tiny": base},
            rest_api_num_threads=_flag(flags, "rest_api_num_threads"),
            schedulable_cpus=int(exp.resources.cpus),
            hold=hold,
        ) as d,
        cf.ThreadPoolExecutor(want) as pool,
    ):
        url = f"http://{d.rest_address}/v1/models/tiny:predict"
        try:
            calls = [pool.submit(requests.post, url, data=body, timeout=90) for _ in range(want)]
            _until(lambda: d.in_model == want, timeout_s=30)
            assert d.in_model == want, f"only {d.in_model} of {want} requests found a REST thread"
        finally:
            hold.set()
        assert all(f.result(timeout=90).ok for f in calls)
