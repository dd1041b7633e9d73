"""servecmp tune for real on this machine (tiny model, short windows): a search killed with
SIGKILL resumes without re-measuring finished configurations; TorchServe is tuned end to end and
the tuned experiment file runs unchanged through `servecmp run`; every shipped experiment file
runs in a shortened form (only the targets that run here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import run_budget
import yaml

from servecmp.experiment import load_experiment, parse_experiment
from servecmp.results.store import RunStore
from servecmp.servers.tfserving.local import TFServingServer
from servecmp.servers.torchserve.local import TorchServeServer
from servecmp.tune.store import TuneStore

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]

TINY: dict[str, Any] = {
    "name": "tune-tiny",
    "model": "tiny",
    "targets": [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "pytorch", "protocol": "inprocess"},
    ],
    "payload": {"distinct_inputs": 8},
    "load": {
        "profile": "closed_loop",
        "concurrency": [1, 2],
        "warmup_s": 0.3,
        "stability": {"window_s": 0.5, "windows": 2, "max_windows": 2},
        "burn_in": {"max_s": 1.5, "window_s": 0.5},
    },
    "resources": {"cpus": 1},
    # friction repeats are tested in test_friction_probes/test_run_local
    "friction": run_budget.friction(),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_run_exports: Any) -> Path:
    """The session's one export of the tiny model (tests/conftest.py), for the whole module."""
    return Path(tiny_run_exports(tmp_path_factory.mktemp("models")))


def _write(tmp: Path, data: dict[str, Any], name: str = "exp.yaml") -> Path:
    f = tmp / name
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    return f


def _tune_cmd(exp: Path, tmp: Path, models: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "servecmp.cli",
        "tune",
        str(exp),
        "--runs",
        str(tmp / "runs"),
        "--artifacts",
        str(models),
        "--out",
        str(tmp / "tuned.yaml"),
        *extra,
    ]


def test_killed_search_resumes_without_remeasuring(tmp_path: Path, models: Path) -> None:
    # one level: the reuse under test is per configuration; each level is one more step process
    exp = _write(tmp_path, {**TINY, "load": {**TINY["load"], "concurrency": [1]}})
    args = ["--server", "pytorch", "--budget-minutes", "3"]
    log = (tmp_path / "first.log").open(
        "w"
    )  # a file, not a pipe nobody reads (it would fill and block)
    proc = subprocess.Popen(
        _tune_cmd(exp, tmp_path, models, *args),
        cwd=ROOT,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        found: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            found = list((tmp_path / "runs").glob("tune-*/measurements.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        assert found and proc.poll() is None, "the search ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    tune_dir = found[0].parent
    before, _ = TuneStore(tune_dir).read()
    assert len(before) >= 2
    stamps = {
        m.key: (tune_dir / m.candidate_dir / "steps.jsonl").stat().st_mtime_ns for m in before
    }
    out = subprocess.run(
        _tune_cmd(exp, tmp_path, models, *args, "--resume", str(tune_dir)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    after, _ = TuneStore(tune_dir).read()
    keys = [m.key for m in after]
    assert len(keys) == len(set(keys)), "a configuration was measured twice"
    assert [m.key for m in after[: len(before)]] == [m.key for m in before]
    for m in before:  # finished configurations were reused, their stored steps untouched
        assert (tune_dir / m.candidate_dir / "steps.jsonl").stat().st_mtime_ns == stamps[m.key]
    assert out.stderr.count("  reused ") >= len(before)  # log lines go to stderr
    assert (tmp_path / "tuned.yaml").is_file()
    summary = json.loads((tune_dir / "summary.json").read_text())
    assert summary["servers"][0]["reused"] >= len(before)


def _skip_without_torchserve() -> None:
    reason = TorchServeServer.availability()
    if reason:
        pytest.skip(reason)


@pytest.mark.torchserve
def test_torchserve_tuned_end_to_end_and_rerun_unchanged(tmp_path: Path, models: Path) -> None:
    _skip_without_torchserve()
    from servecmp.run.orchestrate import run_experiment
    from servecmp.tune import run_tune

    exp_path = _write(tmp_path, TINY)
    out = tmp_path / "tuned.yaml"
    tune_dir = run_tune(
        exp_path,
        # the search keeps 4 measurements' worth for confirmation whatever the budget: a shorter
        # budget screens fewer knobs, and every stage still runs
        budget_minutes=1.5,
        servers=["torchserve"],
        runs_root=tmp_path / "runs",
        artifacts_root=models,
        out=out,
    )
    ms, _ = TuneStore(tune_dir).read()
    assert ms and all(m.server == "torchserve" and not m.unavailable for m in ms)
    assert any(m.levels and m.levels[0].throughput_rps > 0 for m in ms)
    # confirmation keeps 4 measurements' worth of the budget: once a second configuration was
    # screened it runs, or the search says the budget cut it (a loaded machine can make one
    # measurement take the whole screening share: then only the defaults are measured)
    stopped = json.loads((tune_dir / "summary.json").read_text())["servers"][0]["stopped"]
    if len({m.config_id for m in ms if m.stage == "screen"}) > 1:
        cut = "confirmation cut by the budget" in stopped or "not confirmed (budget)" in stopped
        assert any(m.stage == "confirm" for m in ms) or cut, stopped
    # confirmation measurements burn the fresh server in first; screening ones do not
    assert all(m.burn_in and m.burn_in["requests"] > 0 for m in ms if m.stage == "confirm")
    assert all(m.burn_in is None for m in ms if m.stage == "screen")
    # every measurement is a stored run directory of real TorchServe steps
    for m in ms:
        steps = RunStore(tune_dir / m.candidate_dir).read_steps().steps
        assert steps and all(s.server == "torchserve" for s in steps)
    tune_md = (tune_dir / "report" / "tune.md").read_text()
    assert tune_md.count("## Defaults vs best") == 1
    # every tune step read TorchServe's metrics page at its windows' edges: REST parts, shown
    # for the tuned configuration in the tune report
    for m in ms:
        for lv in m.levels:
            assert lv.breakdown is not None and lv.breakdown.not_reported is None, lv.breakdown
            assert lv.breakdown.server_total_ms is not None
    section = tune_md.split("## Where the tuned configuration's time goes")[1].split("\n## ")[0]
    summary = json.loads((tune_dir / "summary.json").read_text())["servers"][0]
    if any(lv.slo_ok for m in ms if m.config_id == summary["best_id"] for lv in m.levels):
        assert "| torchserve | " in section, section
    tuned = load_experiment(out)  # unchanged: as written
    assert tuned.configuration == "tuned" and "torchserve" in tuned.tuning.per_server
    run_dir = run_experiment(
        tuned,
        experiment_path=out,
        runs_root=tmp_path / "run",
        artifacts_root=models,
        only=["torchserve-rest-json"],
        prometheus=False,
        report=True,
        friction_under_load=False,
    )
    props = (run_dir / "configs" / "torchserve" / "config.properties").read_text()
    workers = tuned.for_server("torchserve").tuning.workers
    assert f"default_workers_per_model={workers}" in props
    assert RunStore(run_dir).read_steps().steps
    md = (run_dir / "report" / "report.md").read_text()
    assert "at best (tuned configurations)" in md.splitlines()[0]
    assert "each server runs its own tuned configuration" in md


def _shortened(path: Path) -> dict[str, Any]:
    exp = load_experiment(path)
    data = exp.model_dump(mode="json")
    here = {"torchserve", "pytorch", "tensorflow"} | (
        {"tfserving"} if not TFServingServer.availability() else set()
    )
    data["model"] = "tiny"
    data["targets"] = [t for t in data["targets"] if t["server"] in here]
    data["tuning"]["per_server"] = {
        k: v for k, v in data["tuning"]["per_server"].items() if k in here
    }
    load = data["load"]
    load.update(
        warmup_s=0.2,
        repeats=1,
        stability={"window_s": 0.5, "windows": 2, "max_windows": 2, "tolerance": 0.1},
    )
    # one level: what differs between the files (profile, batching, tuned settings) is exercised
    # by any level; the sweep over levels is tested in test_engine_* and test_run_local
    load["concurrency"] = load["concurrency"][:1]
    load["burn_in"] = {"max_s": 1.5, "window_s": 0.5}
    data["friction"] = run_budget.friction()
    load["rates"] = load["rates"][:2]
    return data


def _covers(run: dict[str, Any], other: dict[str, Any]) -> bool:
    """``run``'s shortened run exercises everything ``other``'s would: the same settings, and
    every target of ``other`` among its own."""
    a, b = dict(run), dict(other)
    for d in (a, b):
        for key in ("name", "description"):
            d.pop(key, None)
        if d.get("load", {}).get("repeats") == 1:
            # which rounds run the baselines (servecmp/run/rounds.py baseline_round): with
            # one round, "first" and "every" run the same steps
            d["load"] = {k: v for k, v in d["load"].items() if k != "baseline_rounds"}
    targets_a, targets_b = a.pop("targets"), b.pop("targets")
    return a == b and all(t in targets_a for t in targets_b)


def _experiment_files() -> dict[str, dict[str, Any]]:
    # zoo-*.yaml differ from quick.yaml only in their model and sizing, both replaced here (tiny,
    # shortened load): running them would repeat quick.yaml's case, never their own models
    files = sorted(
        p
        for p in (ROOT / "loadtests" / "experiments").glob("*.yaml")
        if not p.name.startswith("zoo-")
    )
    return {p.name: _shortened(p) for p in files}


def _split_by_shape(
    shortened: dict[str, dict[str, Any]],
) -> tuple[list[str], dict[str, str]]:
    """The files to run (one per distinct shortened shape, the one with most targets first) and,
    for each other file, the run file that covers it."""
    order = sorted(shortened, key=lambda n: (-len(shortened[n]["targets"]), n))
    run: list[str] = []
    covered: dict[str, str] = {}
    for name in order:
        by = next((r for r in run if _covers(shortened[r], shortened[name])), None)
        if by is None:
            run.append(name)
        else:
            covered[name] = by
    return sorted(run), covered


SHORTENED = _experiment_files()
RUN_FILES, COVERED_FILES = _split_by_shape(SHORTENED)


def test_covers_needs_the_same_settings_and_a_subset_of_targets() -> None:
    base: dict[str, Any] = {
        "name": "a",
        "targets": [{"server": "x"}, {"server": "y"}],
        "load": {"rate": 1},
    }
    assert _covers(base, dict(base, name="b", targets=[{"server": "y"}]))
    assert not _covers(base, dict(base, targets=[{"server": "z"}]))
    assert not _covers(base, dict(base, load={"rate": 2}))
    run, covered = _split_by_shape({"big": base, "small": dict(base, targets=base["targets"][:1])})
    assert run == ["big"] and covered == {"small": "big"}
    one_round = dict(base, load={"repeats": 1, "baseline_rounds": "every"})
    assert _covers(one_round, dict(one_round, load={"repeats": 1, "baseline_rounds": "first"}))
    rounds = dict(base, load={"repeats": 2, "baseline_rounds": "every"})
    assert not _covers(rounds, dict(rounds, load={"repeats": 2, "baseline_rounds": "first"}))


@pytest.mark.parametrize("name", sorted(COVERED_FILES))
def test_experiment_file_of_a_shape_already_run_is_valid(name: str) -> None:
    """A file whose shortened form a run file covers (same settings, its targets among the run
    file's) is validated in full and shortened, without load: running it would repeat that run."""
    load_experiment(ROOT / "loadtests" / "experiments" / name)
    parse_experiment(SHORTENED[name], name)
    assert COVERED_FILES[name] in RUN_FILES


@pytest.mark.torchserve
@pytest.mark.parametrize("name", RUN_FILES)
def test_every_experiment_file_runs_shortened(name: str, tmp_path: Path, models: Path) -> None:
    _skip_without_torchserve()
    from servecmp.run.orchestrate import run_experiment

    exp = parse_experiment(SHORTENED[name], name)
    run_dir = run_experiment(
        exp,
        runs_root=tmp_path / "runs",
        artifacts_root=models,
        prometheus=False,
        report=False,
        friction_under_load=False,
    )
    steps = RunStore(run_dir).read_steps().steps
    assert {s.target for s in steps} == {t.name for t in exp.targets}
