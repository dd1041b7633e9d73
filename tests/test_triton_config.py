"""Triton's generated configuration as pure functions of the experiment (no server).

Facts: triton-inference-server/server v2.51.0 (src/command_line_parser.{h,cc},
docs/user_guide/model_configuration.md, docs/user_guide/metrics.md); the parse of config.pbtxt
by Triton's own ModelConfig schema and of the flags by the installed binary are in
tests/test_triton.py (they need .venv-triton).
"""

from __future__ import annotations

from typing import Any

import pytest

from servecmp.configgen.placement import Placement
from servecmp.experiment import ExperimentError, parse_experiment
from servecmp.servers import registry
from servecmp.servers.triton import ADAPTER, WIRE, config


def _exp(**fields: object) -> Any:
    return parse_experiment(
        {
            "name": "t",
            "model": "resnet",
            "targets": [{"server": "triton", "protocol": "rest"}],
            **fields,
        }
    )


class _Placement:
    bind_host = "127.0.0.1"

    def port(self, server: str, role: str) -> int:
        return {"rest": 18000, "grpc": 18001, "metrics": 18002}[role]

    def path(self, server: str, role: str) -> str:
        return {"models": "/m root", "config": "/c"}[role]


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_model_config_carries_the_budget_without_batching() -> None:
    exp = _exp(resources={"cpus": 4}, tuning={"workers": 2}, payload={"batch_size": 4})
    pbtxt = config.model_config(exp)
    assert 'name: "resnet"' in pbtxt and 'backend: "python"' in pbtxt
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in pbtxt
    assert 'key: "intra_op_threads" value { string_value: "2" }' in pbtxt  # 4 cpus / 2 workers
    assert "max_batch_size: 4" in pbtxt  # accepts the payload's batch, batches nothing more
    assert "dims: [ 3, 64, 64 ]" in pbtxt and "dims: [ 10 ]" in pbtxt
    assert "dynamic_batching" not in pbtxt


def test_batching_counts_examples_and_maps_every_field() -> None:
    exp = _exp(
        payload={"batch_size": 4},
        tuning={
            "batching": {
                "enabled": True,
                "max_batch_size": 8,
                "batch_timeout_ms": 2.5,
                "max_enqueued_batches": 10,
            }
        },
    )
    pbtxt = config.model_config(exp)
    assert "max_batch_size: 32" in pbtxt  # 8 requests x 4 examples: Triton counts examples
    assert "preferred_batch_size: [ 32 ]" in pbtxt
    assert "max_queue_delay_microseconds: 2500" in pbtxt
    assert "default_queue_policy { max_queue_size: 80 }" in pbtxt  # 10 batches x 8 requests


def test_flags_place_the_server_and_use_explicit_model_control() -> None:
    exp = _exp(resources={"cpus": 2}, tuning={"io_threads": 3})
    flags = config.flags(exp, _Placement())  # type: ignore[arg-type]
    assert "--model-repository=/m root" in flags
    assert "--model-control-mode=explicit" in flags and "--load-model=resnet" in flags
    assert "--http-port=18000" in flags and "--grpc-port=18001" in flags
    assert "--metrics-port=18002" in flags and "--http-address=127.0.0.1" in flags
    assert "--http-thread-count=3" in flags
    rendered = config.render(exp, _Placement())  # type: ignore[arg-type]
    assert config.read_flags(rendered.files[config.FLAGS_FILE]) == flags
    assert rendered.env["OMP_NUM_THREADS"] == "2"


def test_kubernetes_placement_uses_the_wire() -> None:
    rendered = ADAPTER.render(_exp(), Placement.kubernetes())
    flags = config.read_flags(rendered.files[config.FLAGS_FILE])
    assert f"--http-port={WIRE.port('rest').number}" in flags
    assert f"--model-repository={WIRE.paths['models']}" in flags
    assert "--http-address=0.0.0.0" in flags
    assert set(ADAPTER.chart_files.values()) == set(rendered.files)


def test_surface_counts_only_what_differs_from_tritons_defaults() -> None:
    default = ADAPTER.config_surface(ADAPTER.render(_exp(), _Placement()))  # type: ignore[arg-type]
    # one instance is the Python backend's default; ports and paths are placement
    assert not any("instance_group" in c for c in default.changed)
    assert not any(c.startswith(("--http-port", "--model-repository")) for c in default.changed)
    assert "--model-control-mode=explicit" in default.changed
    two = ADAPTER.config_surface(
        ADAPTER.render(_exp(tuning={"workers": 2}), _Placement())  # type: ignore[arg-type]
    )
    assert two.knobs_changed == default.knobs_changed + 1
    assert 0 < default.knobs_changed <= default.knobs_set


def test_adapter_is_registered_with_its_label_and_protocols() -> None:
    a = registry.get("triton")
    assert a is ADAPTER and a.label == "Triton 2.51 (Python backend)" and a.short_label == "Triton"
    assert [s.protocol.value for s in a.protocols] == ["rest", "grpc"]
    assert all(s.encodings[0].value == "oip" for s in a.protocols)
    assert a.baseline == "pytorch-inprocess" and a.framework == "pytorch"
    ports = {p.role: p.number for p in WIRE.ports}
    assert ports == {"rest": 8000, "grpc": 8001, "metrics": 8002}  # command_line_parser.h
    assert WIRE.ready_path == "/v2/models/{model}/ready" and WIRE.metrics_path == "/metrics"
    rows = {r.setting: r for r in a.fairness}
    assert rows["tuning.workers"].knob.startswith("instance_group")
    assert rows["tuning.io_threads"].knob == "--http-thread-count"
    assert "examples" in rows["tuning.batching.max_batch_size"].rule


def test_targets_take_oip_only() -> None:
    exp = parse_experiment(
        {
            "name": "t",
            "targets": [
                {"server": "triton", "protocol": "rest"},
                {"server": "triton", "protocol": "grpc"},
            ],
        }
    )
    assert [t.name for t in exp.targets] == ["triton-rest-oip", "triton-grpc-oip"]
    with pytest.raises(ExperimentError, match="allowed: oip"):
        parse_experiment(
            {
                "name": "t",
                "targets": [{"server": "triton", "protocol": "rest", "encoding": "json"}],
            }
        )


def test_predict_urls_are_the_v2_infer_route() -> None:
    ok, missing = ADAPTER.predict_urls("127.0.0.1:1", "resnet")
    assert ok == "http://127.0.0.1:1/v2/models/resnet/infer"
    assert missing == "http://127.0.0.1:1/v2/models/resnet-missing/infer"
    assert ADAPTER.request_body_limit({}) is None  # 2.51 documents no REST body limit


def test_promql_renames_tritons_model_label() -> None:
    from servecmp.servers.triton import metrics

    m = metrics.METRICS
    assert '"model_name", "$1", "model", "(.*)"' in m.requests_rate
    assert m.latency_quantile_s is None  # counters only by default: means, no quantiles
    assert metrics.SUCCESS in m.requests_rate and metrics.FAILURE in (m.error_ratio or "")
