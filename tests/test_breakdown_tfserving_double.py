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
from doubles.tiny_artifacts import TinyWeights, write_savedmodel

from servecmp.experiment import Load, Stability, Target
from servecmp.load.engine.runner import run_step
from servecmp.load.engine.spec import StepSpec
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
    spec = StepSpec(
        run_id="t",
        step_id=f"tfs-double-{protocol}",
        target=Target(server="tfserving", protocol=protocol),
        address=address,
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=2,
        load=Load(
            warmup_s=0.5,
            stability=Stability(window_s=1.5, windows=2, max_windows=2, tolerance=0.5),
        ),
        payloads_path=_payloads(run_dir),
        server_metrics_url=(
            f"http://{double.rest_address}/monitoring/prometheus/metrics" if metrics else None
        ),
    )
    return run_step(spec, run_dir)


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_parts_of_the_double_add_up_to_the_clients_mean(
    double: Any, tmp_path: Path, protocol: str
) -> None:
    r = _step(double, tmp_path, protocol)
    assert r.ok > 20, r.error
    b = r.breakdown
    assert b is not None and b.not_reported is None, b
    assert b.flagged is None, b.flagged
    parts = {p.part: p for p in b.parts}
    assert parts["queue"].ms is None  # no batching: the queue histogram is not exposed
    assert parts["queue"].why is not None and "not exposed" in parts["queue"].why
    assert parts["compute"].ms is not None and parts["compute"].ms >= 5.0  # the delay
    assert parts["pre_post"].ms is not None and parts["outside"].ms is not None
    total = sum(p.ms for p in b.parts if p.ms is not None)
    assert b.client_mean_ms is not None and b.noise_ms is not None
    assert abs(total - b.client_mean_ms) <= b.noise_ms
    # the server counted (about) the requests the client saw: the same span was read
    assert b.server_requests is not None
    assert abs(b.server_requests - r.ok) <= 2 * 2 * r.reported_windows
    # per-window server resources are kept only when a server tree is watched: none here
    assert all(w.server_cpu is None for w in r.windows)


def test_without_a_metrics_page_there_is_no_breakdown(double: Any, tmp_path: Path) -> None:
    r = _step(double, tmp_path, "rest", metrics=False)
    assert r.ok > 0 and r.breakdown is None
