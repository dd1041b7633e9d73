"""A local run renders, publishes and records only the servers its targets name: an experiment of
two servers leaves no file, port, friction record or model-card row of any other registered
server in its run directory. ``servecmp configs`` and the chart values still cover every
registered server (files for the repo, not a run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import run_budget

from servecmp.experiment import parse_experiment
from servecmp.models.runcard import read_run_card
from servecmp.results.friction import read_friction
from servecmp.results.store import RunStore
from servecmp.run.configs import local_configs, run_servers
from servecmp.servers import registry

TWO = {
    "name": "two",
    "model": "tiny",
    "seed": 1234,
    "targets": [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "kserve", "protocol": "rest"},
        {"server": "kserve", "protocol": "grpc"},
        {"server": "pytorch", "protocol": "inprocess"},
    ],
}


def test_run_servers_are_the_named_servers_in_registry_order_without_baselines() -> None:
    exp = parse_experiment(TWO)
    assert [a.name for a in run_servers(exp.targets)] == ["torchserve", "kserve"]
    assert run_servers([t for t in exp.targets if t.is_baseline]) == []
    assert len(registry.servers()) > 2  # the test says something only while others exist


def test_local_configs_write_only_the_experiments_servers(tmp_path: Path) -> None:
    from servecmp.models.export import artifacts

    exp = parse_experiment(TWO)
    configs, dirs = local_configs(exp, tmp_path, artifacts("tiny", tmp_path / "art"))
    assert (
        set(configs.files) == set(dirs) == set(configs.placement.ports) == {"torchserve", "kserve"}
    )
    assert sorted(p.name for p in (tmp_path / "configs").iterdir()) == ["kserve", "torchserve"]


def test_configs_for_the_repo_still_cover_every_registered_server() -> None:
    from servecmp.configgen import Placement, render_all

    gen = render_all(parse_experiment(TWO), Placement.kubernetes())
    assert list(gen.files) == [a.name for a in registry.servers()]


@pytest.mark.heavy
def test_a_run_of_two_servers_holds_only_their_configs_and_records(
    tmp_path: Path, tiny_run_exports: Callable[[Path], Path]
) -> None:
    from servecmp.run.orchestrate import LocalRun

    exp = parse_experiment(TWO)
    root = tiny_run_exports(tmp_path / "build")
    run = LocalRun(exp, run_dir=tmp_path / "run", artifacts_root=root, prometheus=False)
    run.prepare()
    two = {"torchserve", "kserve"}
    assert {p.name for p in (run.run_dir / "configs").iterdir()} == two
    assert {p.name for p in (run.run_dir / "models").iterdir()} <= two  # published v1
    meta = RunStore(run.run_dir).read_meta()
    assert set(meta.placement["server_ports"]) == two
    others = {a.name for a in registry.servers()} - two
    text = json.dumps(meta.model_dump(mode="json")["placement"])
    assert not [s for s in others if s in text], text
    assert {r.server for r in read_friction(run.run_dir)[0]} == two
    card = read_run_card(run.run_dir)
    assert card is not None
    assert set(card["artifact_bytes"]) == two | {"pytorch"}
    assert set(card["unavailable"]) <= two | {"pytorch"}

    # a run cut to some targets (``servecmp run --target``) renders only their servers
    one = LocalRun(
        exp,
        run_dir=tmp_path / "run-one",
        artifacts_root=root,
        prometheus=False,
        targets=[t for t in exp.targets if t.server == "kserve"],
    )
    one.prepare()
    assert [p.name for p in (one.run_dir / "configs").iterdir()] == ["kserve"]
    assert {r.server for r in read_friction(one.run_dir)[0]} == {"kserve"}


@pytest.mark.heavy
@pytest.mark.load
def test_the_progress_total_counts_only_the_steps_that_run(
    tmp_path: Path, tiny_run_exports: Callable[[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that cannot start takes no step: the bar's total drops its steps, so a run that
    finishes ends at N/N (it ended at 42/64 when TF Serving's binary was missing)."""
    from servecmp.run.orchestrate import LocalRun
    from servecmp.servers.torchserve.local import TorchServeServer

    monkeypatch.setattr(TorchServeServer, "availability", classmethod(lambda cls: "no java here"))
    exp = parse_experiment(
        {
            "name": "bar",
            "model": "tiny",
            "seed": 1234,
            "targets": [
                {"server": "torchserve", "protocol": "rest"},
                {"server": "torchserve", "protocol": "grpc"},
                {"server": "pytorch", "protocol": "inprocess"},
            ],
            "payload": {"distinct_inputs": 4},
            "load": {
                "profile": "closed_loop",
                "concurrency": [1],
                "warmup_s": 0.2,
                "stability": {"window_s": 0.5, "windows": 2, "max_windows": 2},
                "repeats": 2,
                "burn_in": {"max_s": 0},
            },
            "friction": run_budget.friction(),
        }
    )
    run = LocalRun(
        exp,
        run_dir=tmp_path / "run",
        artifacts_root=tiny_run_exports(tmp_path / "b"),
        prometheus=False,
    )
    totals: list[int] = []
    advanced: list[str] = []
    run.resize_progress, run.advance = totals.append, advanced.append
    run.prepare()
    run.run_all(list(exp.targets))
    assert advanced == ["pytorch-inprocess", "pytorch-inprocess"]  # one step per round
    assert totals == [len(advanced)]
