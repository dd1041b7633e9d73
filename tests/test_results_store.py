"""Results store: append/read, truncated last line, format_version rejection, meta, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servecmp.experiment import load_experiment
from servecmp.results import FormatVersionError, RunStore, StepResult, TargetAvailability
from servecmp.results.metrics import METRICS, Better, get_metric
from servecmp.results.provenance import build_meta
from servecmp.results.schema import LatencySummary
from servecmp.results.store import StoreError

REPO = Path(__file__).resolve().parents[1]


def step(step_id: str, p99: float = 10.0, thr: float = 100.0) -> StepResult:
    return StepResult(
        run_id="r",
        step_id=step_id,
        target="torchserve-rest-json",
        server="torchserve",
        protocol="rest",
        encoding="json",
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=1,
        started_at="2025-01-01T00:00:00Z",
        warmup_s=1,
        window_s=1,
        stop_reason="stable",
        latency_ms=LatencySummary(count=10, p99=p99),
        throughput_rps=thr,
    )


def test_append_and_read(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_step(step("a"))
    store.append_step(step("b"))
    read = store.read_steps()
    assert [s.step_id for s in read.steps] == ["a", "b"]
    assert not read.truncated_last_line and not read.warnings
    assert store.find_step("b").step_id == "b"


def test_truncated_last_line_is_tolerated_and_reported(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_step(step("a"))
    line = step("b").model_dump_json()
    with store.steps_path.open("a") as fh:
        fh.write(line[: len(line) // 2])  # a crash mid-write
    read = store.read_steps()
    assert [s.step_id for s in read.steps] == ["a"]
    assert read.truncated_last_line
    assert "truncated last line" in read.warnings[0] and "line 2" in read.warnings[0]
    store.append_step(step("c"))  # the next append moves the fragment aside and starts a clean line
    read = store.read_steps()
    assert [s.step_id for s in read.steps] == ["a", "c"] and not read.truncated_last_line
    assert any(".torn" in w for w in read.warnings)


def test_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_step(step("a"))
    with store.steps_path.open("a") as fh:
        fh.write("{not json\n")
    store.append_step(step("b"))
    with pytest.raises(StoreError, match="line 2"):
        store.read_steps()


def test_other_format_version_is_rejected_with_file_and_versions(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    data = json.loads(step("a").model_dump_json())
    data["format_version"] = 2
    store.steps_path.write_text(json.dumps(data) + "\n")
    with pytest.raises(FormatVersionError) as err:
        store.read_steps()
    msg = str(err.value)
    assert (
        str(store.steps_path) in msg
        and "line 1" in msg
        and "2" in msg
        and "format_version 1" in msg
    )


def test_meta_roundtrip_and_version_check(tmp_path: Path) -> None:
    exp = load_experiment(REPO / "loadtests" / "experiments" / "encodings.yaml")
    store = RunStore(tmp_path)
    meta = build_meta(exp, "run-1", placement={"generator": [1], "servers": [0]})
    store.write_meta(meta)
    back = store.read_meta()
    assert back.experiment_digest == exp.digest()
    assert back.versions["python"] and back.versions["locust"]
    assert back.host["logical_cores"] >= 1 and back.host["cpu_model"]
    assert back.payload["encodings"]["torchserve-rest-raw"] == "raw"
    data = json.loads((tmp_path / "meta.json").read_text())
    data["format_version"] = 0
    (tmp_path / "meta.json").write_text(json.dumps(data))
    with pytest.raises(FormatVersionError, match=r"meta\.json"):
        store.read_meta()


def test_targets_jsonl(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.append_target(
        TargetAvailability(
            target="tfserving-rest-json",
            available=False,
            reason="tensorflow_model_server not found",
        )
    )
    assert store.read_targets()[0].reason.startswith("tensorflow_model_server")


def test_metric_definitions() -> None:
    assert get_metric("throughput_rps").better is Better.higher
    assert (
        get_metric("latency_p99_ms").better is Better.lower
        and METRICS["latency_p99_ms"].unit == "ms"
    )
    fast, slow = step("a", p99=5), step("b", p99=50)
    assert get_metric("latency_p99_ms").better_of(fast, slow) is fast
    assert (
        get_metric("throughput_rps").better_of(step("x", thr=10), step("y", thr=20)).step_id == "y"
    )
    with pytest.raises(KeyError, match="known"):
        get_metric("nope")
