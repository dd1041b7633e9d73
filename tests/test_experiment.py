"""The experiment file: validation errors name the field and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from servecmp.experiment import ExperimentError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
BASE = {"name": "t", "targets": [{"server": "torchserve", "protocol": "rest"}]}


def _err(data: dict) -> str:
    with pytest.raises(ExperimentError) as info:
        parse_experiment(data, "exp.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    "path", sorted((ROOT / "loadtests" / "experiments").glob("*.yaml")), ids=lambda p: p.name
)
def test_committed_experiments_are_valid(path: Path) -> None:
    exp = load_experiment(path)
    assert exp.targets


def test_unknown_protocol_names_field_and_allowed_values() -> None:
    msg = _err({**BASE, "targets": [{"server": "torchserve", "protocol": "http3"}]})
    assert "exp.yaml" in msg
    assert "targets.0.protocol" in msg
    assert "'rest', 'grpc' or 'inprocess'" in msg


def test_bad_load_profile_and_negative_cpu_reported_together() -> None:
    msg = _err({**BASE, "load": {"profile": "burst"}, "resources": {"cpus": -1}})
    assert "load.profile" in msg and "open_loop" in msg
    assert "resources.cpus" in msg and "greater than 0" in msg


def test_unknown_field_is_rejected_by_name() -> None:
    msg = _err({**BASE, "tuning": {"wokers": 2}})
    assert "tuning.wokers" in msg and "unknown field" in msg


def test_encoding_must_fit_server_and_protocol() -> None:
    msg = _err(
        {**BASE, "targets": [{"server": "tfserving", "protocol": "grpc", "encoding": "raw"}]}
    )
    assert "encoding 'raw' is not valid for tfserving/grpc" in msg
    assert "tensorproto" in msg


def test_server_protocol_pair_must_exist() -> None:
    msg = _err({**BASE, "targets": [{"server": "pytorch", "protocol": "rest"}]})
    assert "cannot be reached over 'rest'" in msg


def test_unknown_model_lists_registry() -> None:
    msg = _err({**BASE, "model": "bert"})
    assert "model 'bert' is unknown" in msg and "resnet" in msg


def test_duplicate_targets_rejected() -> None:
    t = {"server": "torchserve", "protocol": "rest"}
    assert "duplicate target(s) torchserve-rest-json" in _err({**BASE, "targets": [t, t]})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ExperimentError, match="not valid YAML"):
        load_experiment(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ExperimentError, match="expected a YAML mapping"):
        load_experiment(lst)


def test_thread_budget_derives_from_cpus_not_machine() -> None:
    exp = parse_experiment({**BASE, "resources": {"cpus": 4}, "tuning": {"workers": 2}})
    assert exp.intra_op_threads == 2
    assert exp.io_threads == 4


def test_digest_ignores_formatting_but_not_settings() -> None:
    a = parse_experiment(BASE)
    b = parse_experiment(yaml.safe_load(yaml.safe_dump(BASE, default_flow_style=True)))
    c = parse_experiment({**BASE, "seed": 7})
    assert a.digest() == b.digest() != c.digest()


def test_repeats_default_and_bounds() -> None:
    assert parse_experiment(BASE, "exp.yaml").load.repeats == 1
    assert parse_experiment({**BASE, "load": {"repeats": 3}}, "exp.yaml").load.repeats == 3
    msg = _err({**BASE, "load": {"repeats": 0}})
    assert "load.repeats" in msg and "greater than or equal to 1" in msg


def test_quick_profile_interleaves_at_least_three_repeats() -> None:
    from servecmp.run.orchestrate import QUICK_STABILITY, quick_profile

    exp = quick_profile(load_experiment(ROOT / "loadtests" / "experiments" / "quick.yaml"))
    assert exp.load.repeats == 4 and exp.load.warmup_s <= 0.5  # quick.yaml's rounds are kept
    assert exp.load.baseline_rounds == "first"  # the references once, the pairs every round
    assert exp.load.stability.window_s == QUICK_STABILITY["window_s"]
    # a file's shorter windows and fewer repeats: the windows kept, the repeats raised to 3
    short = parse_experiment(
        {**BASE, "load": {"stability": {"window_s": 0.5, "windows": 2, "max_windows": 2}}}, "x"
    )
    q = quick_profile(short)
    assert q.load.stability.window_s == 0.5 and q.load.stability.max_windows == 2
    assert q.load.repeats == 3


def test_event_load_and_cost_fields() -> None:
    """The probes' steady load and the timeline span are experiment fields (--quick shortens
    the span, never the load); a price is optional and a wrong one names its field."""
    from servecmp.run.orchestrate import quick_profile

    exp = parse_experiment({**BASE, "friction": {"event_load": {"rate": 40, "concurrency": 2}}})
    q = quick_profile(exp).friction.event_load
    assert (q.rate, q.concurrency, q.before_s, q.after_s) == (40.0, 2, 2.0, 6.0)
    assert parse_experiment(BASE).cost.per_core_hour is None
    assert "cost.per_core_hour" in _err({**BASE, "cost": {"per_core_hour": -1}})
    assert "friction.event_load.concurrency" in _err(
        {**BASE, "friction": {"event_load": {"concurrency": 0}}}
    )
    # defaults leave the digest of experiments written before these fields unchanged
    explicit = {**BASE, "friction": {"startups": 5, "event_load": {}}, "cost": {}}
    assert parse_experiment(explicit).digest() == parse_experiment(BASE).digest()
