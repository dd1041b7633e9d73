"""The latency breakdown end to end against the TF Serving TEST DOUBLE (not TF Serving: the real
binary is not obtainable here; tests/doubles/tfserving_double.py exposes TF Serving 2.20.0's
request/runtime latency histograms). Real step processes read the double's metrics page at each
window's edges; the parts must add up to the client's mean within the step's noise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from breakdown_util import assert_parts_add_up, breakdown_step, parts_of
from doubles.tiny_artifacts import TinyWeights, write_savedmodel

from servecmp.experiment import Target
from servecmp.load.payloads import PayloadSet, seeded_inputs

WEIGHTS = TinyWeights.seeded()


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from doubles.tfserving_double import TFServingDouble

    root = tmp_path_factory.mktemp("tfs-breakdown") / "tiny"
    write_savedmodel(WEIGHTS, root / "1")
    # 5 ms per model call: a compute part well above the machine's scheduling noise
    with TFServingDouble({"tiny": root}, delay_s=0.005) as d:
        yield d


def _payloads(run_dir: Path) -> str:
    x = seeded_inputs(7, 8, 1, (3, 8, 8))
    expected = np.stack([WEIGHTS.logits(b) for b in x])
    return str(PayloadSet(model="tiny", seed=7, inputs=x, expected=expected).save(run_dir))


def _step(double: Any, run_dir: Path, protocol: str, metrics: bool = True) -> Any:
    address = double.rest_address if protocol == "rest" else double.grpc_address
    url = f"http://{double.rest_address}/monitoring/prometheus/metrics" if metrics else None
    target = Target(server="tfserving", protocol=protocol)  # type: ignore[arg-type]
    return breakdown_step(target, address, url, _payloads(run_dir), run_dir)


@pytest.mark.load
@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_parts_of_the_double_add_up_to_the_clients_mean(
    double: Any, tmp_path: Path, protocol: str
) -> None:
    r = _step(double, tmp_path, protocol)
    assert_parts_add_up(r)
    b = r.breakdown
    assert b is not None
    parts = parts_of(r)
    assert parts["queue"].ms is None  # no batching: the queue histogram is not exposed
    assert parts["queue"].why is not None and "not exposed" in parts["queue"].why
    assert parts["compute"].ms is not None and parts["compute"].ms >= 5.0  # the delay
    assert parts["pre_post"].ms is not None and parts["outside"].ms is not None
    # the server counted (about) the requests the client saw: the same span was read
    assert b.server_requests is not None
    assert abs(b.server_requests - r.ok) <= 2 * 2 * r.reported_windows
    # per-window server resources are kept only when a server tree is watched: none here
    assert all(w.server_cpu is None for w in r.windows)


@pytest.mark.load
def test_without_a_metrics_page_there_is_no_breakdown(double: Any, tmp_path: Path) -> None:
    r = _step(double, tmp_path, "rest", metrics=False)
    assert r.ok > 0 and r.breakdown is None


@pytest.mark.load
def test_a_double_that_inflates_its_own_times_trips_the_self_check(
    double: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The double claims 1 s more than each request took (its own latency histograms only): its
    total then exceeds what the client saw, and the step says so instead of drawing a negative
    'outside'."""
    real = double.metrics.observe

    def inflated(name: str, labels: dict[str, str], value_us: float, *a: Any) -> None:
        real(name, labels, value_us + 1e6, *a)

    monkeypatch.setattr(double.metrics, "observe", inflated)
    r = _step(double, tmp_path, "rest")
    b = r.breakdown
    assert b is not None and b.flagged is not None, b
    assert "exceeds what the client saw" in b.flagged
    assert parts_of(r)["outside"].ms is None


# ---- the limits of reading the page across a cluster network (tests/doubles/metrics_relay.py) --
@pytest.mark.load
@pytest.mark.parametrize("mode", ["drops", "stale"])
def test_a_metrics_page_that_drops_or_goes_stale_gives_no_parts_and_says_why(
    double: Any, tmp_path: Path, mode: str
) -> None:
    """What the in-cluster step meets reading the chart's metrics Service: the endpoint refusing
    after the first read (its pod gone), or a page that stopped refreshing. Neither may yield
    parts: the step says why instead."""
    from doubles.metrics_relay import MetricsRelay

    upstream = f"http://{double.rest_address}/monitoring/prometheus/metrics"
    kw: dict[str, Any] = {"drop_after": 1} if mode == "drops" else {"stale": True}
    with MetricsRelay(upstream, **kw) as relay:
        target = Target(server="tfserving", protocol="rest")  # type: ignore[arg-type]
        r = breakdown_step(target, double.rest_address, relay.url, _payloads(tmp_path), tmp_path)
    b = r.breakdown
    assert r.ok > 10, r.error
    assert b is not None and b.not_reported is not None, b
    assert all(p.ms is None for p in b.parts)
    if mode == "drops":
        assert b.not_reported.startswith("server counters not read: URLError"), b.not_reported
    else:
        assert "stale" in b.not_reported, b.not_reported
