"""The order of a round's steps and the baselines a round runs (servecmp/run/rounds.py)."""

from __future__ import annotations

import pytest

from servecmp.experiment import Target
from servecmp.run.rounds import interleaved_order, unpaired_baselines


def _t(server: str, protocol: str, encoding: str | None = None) -> Target:
    return Target(server=server, protocol=protocol, encoding=encoding)  # type: ignore[arg-type]


def test_same_protocol_targets_of_different_servers_are_adjacent() -> None:
    ts = [_t("torchserve", "rest"), _t("torchserve", "grpc"), _t("torchserve", "rest", "raw")]
    ks = [_t("kserve", "rest"), _t("kserve", "grpc")]
    base = [_t("pytorch", "inprocess")]
    order = [t.name for _, t in interleaved_order([("ts", ts), ("ks", ks), (None, base)])]
    assert order == [
        "torchserve-rest-json",
        "kserve-rest-json",
        "torchserve-rest-raw",  # an extra after its protocol's common targets
        "torchserve-grpc-bytes",
        "kserve-grpc-oip",
        "pytorch-inprocess",
    ]
    # every pair of a protocol's common targets is one step apart
    assert order.index("kserve-grpc-oip") - order.index("torchserve-grpc-bytes") == 1


def test_a_baseline_is_skipped_only_when_every_server_of_its_framework_is_down() -> None:
    fw = {"torchserve": "pytorch", "kserve": "pytorch", "tfserving": "tensorflow",
          "pytorch": "pytorch", "tensorflow": "tensorflow"}.__getitem__  # fmt: skip
    base = [_t("pytorch", "inprocess"), _t("tensorflow", "inprocess")]
    wanted = ["torchserve", "tfserving", "kserve"]
    skip = unpaired_baselines(base, wanted, ["torchserve", "kserve"], fw)
    assert list(skip) == ["tensorflow-inprocess"] and "tfserving" in skip["tensorflow-inprocess"]
    assert unpaired_baselines(base, wanted, ["tfserving", "kserve"], fw) == {}
    # an experiment of baselines only runs them all
    assert unpaired_baselines(base, [], [], fw) == {}


class _Recorder:
    """The parts of LocalRun that run_rounds touches, recording each step it would run."""

    def __init__(self, load: dict) -> None:
        from types import SimpleNamespace

        from servecmp.experiment import parse_experiment

        self.exp = parse_experiment(
            {"name": "r", "model": "tiny", "targets": [{"server": "pytorch", "protocol": "inprocess"}],
             "load": load}, "r.yaml")  # fmt: skip
        self.placement = SimpleNamespace(pinned=False, generator_cpus=[], server_cpus=[])
        self.ran: list[tuple[int, str, int]] = []

    def _baseline_artifact(self, target: Target) -> str:
        return "model.pt"

    def _announced(self, target: Target) -> bool:
        return True

    def _run_target(self, target: Target, address: str, **kw: object) -> None:
        params = kw["params"]
        assert isinstance(params, list)
        self.ran.append((int(kw["repeat"]), target.name, int(params[0][1])))  # type: ignore[call-overload]


def _rounds(load: dict) -> list[tuple[int, str, int]]:
    from servecmp.run.orchestrate import LocalRun

    rec = _Recorder(load)
    LocalRun.run_rounds(rec, [(None, [_t("pytorch", "inprocess")])])  # type: ignore[arg-type]
    return rec.ran


def test_baselines_run_in_round_one_only_when_the_experiment_says_first() -> None:
    load = {"repeats": 3, "concurrency": [1, 4]}
    every = _rounds(load)
    assert sorted({r for r, _, _ in every}) == [0, 1, 2] and len(every) == 6
    first = _rounds({**load, "baseline_rounds": "first"})
    assert first == [(0, "pytorch-inprocess", 1), (0, "pytorch-inprocess", 4)]


def test_planned_steps_count_the_baselines_once_when_measured_in_round_one() -> None:
    from servecmp.experiment import Load
    from servecmp.run.rounds import baseline_round, planned_steps

    targets = [_t("torchserve", "rest"), _t("kserve", "rest"), _t("pytorch", "inprocess")]
    assert planned_steps(Load(repeats=5), targets) == 15
    first = Load(repeats=5, baseline_rounds="first")
    assert planned_steps(first, targets) == 11  # 2 x 5 served + 1 baseline
    assert [baseline_round(first, r) for r in range(3)] == [True, False, False]


def test_baseline_rounds_accepts_every_or_first_and_names_the_field() -> None:
    from servecmp.experiment import parse_experiment

    base = {
        "name": "r",
        "model": "tiny",
        "targets": [{"server": "pytorch", "protocol": "inprocess"}],
    }
    assert parse_experiment(base, "r.yaml").load.baseline_rounds == "every"
    with pytest.raises(
        Exception, match=r"r\.yaml(.|\n)*load\.baseline_rounds: Input should be 'every' or 'first'"
    ):
        parse_experiment({**base, "load": {"baseline_rounds": "last"}}, "r.yaml")
