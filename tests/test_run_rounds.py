"""The order of a round's steps and the baselines a round runs (servecmp/run/rounds.py)."""

from __future__ import annotations

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
