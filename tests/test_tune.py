"""servecmp tune without servers: search spaces and their validation (unknown knob, empty space,
budget too small), per-server tuning in the experiment and config generation, the search's
decisions and its resume-by-replay, the defaults-vs-best ratio and the Pareto front.

The search is driven here by a scripted measurer (scores from a table, no load, no server): it
checks the search's bookkeeping, never stands for a server, and its records stay in tmp dirs.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from servecmp.cli import main
from servecmp.configgen import Placement, render_all
from servecmp.experiment import ExperimentError, load_experiment, parse_experiment
from servecmp.servers.base import Knob, SearchSpace
from servecmp.servers.torchserve.config import parse_properties
from servecmp.tune import space as sp
from servecmp.tune.pareto import Point, front
from servecmp.tune.report import defaults_vs_best
from servecmp.tune.search import Budget, Search
from servecmp.tune.store import Level, Measurement, Stage, TuneStore

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "loadtests" / "experiments" / "quick.yaml"


def _exp(**extra: Any) -> Any:
    data = {
        "name": "t",
        "model": "tiny",
        "targets": [
            {"server": "torchserve", "protocol": "rest"},
            {"server": "tfserving", "protocol": "rest"},
            {"server": "pytorch", "protocol": "inprocess"},
        ],
        "resources": {"cpus": 2},
    } | extra
    return parse_experiment(data)


# ---- spaces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("server", ["torchserve", "tfserving", "pytorch", "tensorflow"])
def test_declared_spaces_validate_and_cite_their_source(server: str) -> None:
    space = sp.space_for(server)
    sp.validate_space(server, space)
    for k in space.knobs:
        assert k.source and (
            "pytorch/serve v0.12.0" in k.source or "tensorflow/serving 2.20.0" in k.source
        )


def test_unknown_knob_is_named_with_the_servers_known_knobs() -> None:
    bad = SearchSpace(knobs=(Knob(field="tuning.worker_count", values=(1, 2), source="x"),))
    with pytest.raises(sp.TuneError) as err:
        sp.validate_space("torchserve", bad)
    msg = str(err.value)
    assert "'tuning.worker_count'" in msg and "tuning.workers" in msg and "tuning.io_threads" in msg


def test_tfserving_rejects_io_threads_it_has_no_knob_for() -> None:
    bad = SearchSpace(knobs=(Knob(field="tuning.io_threads", values=(1, 2), source="x"),))
    with pytest.raises(sp.TuneError, match=r"unknown knob 'tuning\.io_threads'"):
        sp.validate_space("tfserving", bad)


def test_empty_space_and_empty_knob_are_refused() -> None:
    with pytest.raises(sp.TuneError, match="search space is empty"):
        sp.validate_space("torchserve", SearchSpace(knobs=()))
    with pytest.raises(sp.TuneError, match="has no values"):
        sp.validate_space("torchserve", SearchSpace(knobs=(Knob("tuning.workers", (), "x"),)))


def test_budget_too_small_names_the_minimum() -> None:
    exp = load_experiment(QUICK)
    need = sp.measurement_seconds(exp)
    with pytest.raises(sp.TuneError) as err:
        sp.check_budget(exp, need - 1)
    assert f"at least {need / 60:.2f}" in str(err.value)
    assert sp.check_budget(exp, need) == need


def test_cli_budget_too_small_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(
        [
            "tune",
            str(QUICK),
            "--budget-minutes",
            "0.1",
            "--runs",
            str(tmp_path),
            "--out",
            str(tmp_path / "t.yaml"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "too small for one measurement" in err and "--budget-minutes" in err
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_cli_unknown_server_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = main(["tune", str(QUICK), "--server", "triton", "--runs", str(tmp_path)])
    assert rc == 2
    assert "--server 'triton'" in capsys.readouterr().err


def test_grid_collapses_batching_knobs_when_batching_is_off() -> None:
    space = sp.space_for("torchserve")
    cands = sp.grid("torchserve", space)
    off = [c for c in cands if c.as_dict()["tuning.batching.enabled"] is False]
    on = [c for c in cands if c.as_dict()["tuning.batching.enabled"] is True]
    sizes = {k.field: len(k.values) for k in space.knobs}
    rest = (
        sizes["tuning.workers"]
        * sizes["tuning.intra_op_threads"]
        * sizes["tuning.io_threads"]
        * sizes["tuning.logging"]
    )
    assert len(off) == rest
    assert (
        len(on)
        == rest
        * sizes["tuning.batching.max_batch_size"]
        * sizes["tuning.batching.batch_timeout_ms"]
    )
    assert all("tuning.batching.max_batch_size" not in c.as_dict() for c in off)
    assert len({c.id for c in cands}) == len(cands)


# ---- the experiment carries per-server configurations ----------------------------------------
def test_per_server_tuning_reaches_only_its_server() -> None:
    exp = _exp(
        configuration="tuned",
        tuning={
            "workers": 1,
            "per_server": {
                "torchserve": {
                    "workers": 2,
                    "intra_op_threads": 1,
                    "io_threads": 4,
                    "batching": {"enabled": True, "max_batch_size": 4, "batch_timeout_ms": 5},
                }
            },
        },
    )
    cfg = render_all(exp, Placement.kubernetes())
    props = parse_properties(cfg.files["torchserve"]["config.properties"])
    assert props["default_workers_per_model"] == "2" and props["number_of_netty_threads"] == "4"
    model = json.loads(props["models"])["tiny"]["1.0"]
    assert model["batchSize"] == 4 and model["minWorkers"] == 2
    assert cfg.env["torchserve"]["OMP_NUM_THREADS"] == "1"
    from servecmp.servers.tfserving.config import flag_lines

    flags = flag_lines(cfg.files["tfserving"])
    assert "--tensorflow_inter_op_parallelism=1" in flags  # TF Serving keeps the shared settings
    assert not any(f.startswith("--enable_batching") for f in flags)
    fs = exp.fairness_settings()
    assert "each server runs its own tuned configuration" in str(fs["configuration"])
    assert fs["tuning.per_server"] == {
        "torchserve": exp.tuning.per_server[next(iter(exp.tuning.per_server))].model_dump(
            mode="json", exclude_none=True
        )
    }


def test_per_server_needs_the_tuned_label_and_a_target() -> None:
    with pytest.raises(ExperimentError, match="configuration: tuned"):
        _exp(tuning={"per_server": {"torchserve": {"workers": 2}}})
    with pytest.raises(ExperimentError, match=r"tuning\.per_server\.tensorflow: no target"):
        _exp(configuration="tuned", tuning={"per_server": {"tensorflow": {"workers": 2}}})


def test_digest_of_an_untuned_experiment_is_unchanged() -> None:
    exp = load_experiment(QUICK)
    data = exp.model_dump(mode="json")
    del (
        data["tuning"]["per_server"],
        data["configuration"],
        data["tuning"]["logging"],
    )  # added later, default
    del (
        data["load"]["burn_in"],
        data["friction"],
    )  # added later still: the defaults keep older digests too
    del data["cost"], data["model_card"]  # a price; a model card (None for a built-in)
    old = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert exp.digest() == old
    assert "configuration" not in exp.fairness_settings()


def test_variant_is_a_valid_tuned_experiment_for_one_server() -> None:
    exp = _exp()
    cand = sp.candidate(
        "torchserve",
        {
            "tuning.workers": 2,
            "tuning.batching.enabled": False,
            "tuning.batching.max_batch_size": 8,
        },
    )
    v = sp.variant(exp, cand)
    assert v.configuration == "tuned"
    assert (
        v.for_server("torchserve").tuning.workers == 2
        and v.for_server("pytorch").tuning.workers == 1
    )
    assert "tuning.batching.max_batch_size" not in cand.as_dict()  # off: collapsed


# ---- the search ------------------------------------------------------------------------------
class ScriptedMeasurer:
    """Scores from a function of the configuration; counts calls. Not a server."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.calls: list[tuple[str, str, int]] = []
        self.levels: list[str | None] = []

    def measure(
        self,
        cand: sp.Candidate,
        stage: Stage,
        rnd: int,
        incumbent: Measurement | None = None,
        level: str | None = None,
    ) -> Measurement:
        self.calls.append((cand.id, stage, rnd))
        self.levels.append(level)
        rps = float(self.fn(cand.as_dict(), rnd))
        lv = Level(
            param="concurrency=4",
            throughput_rps=rps,
            p50_ms=5.0,
            p99_ms=20.0,
            error_fraction=0.0,
            valid=True,
            steady=True,
            slo_ok=rps > 0,
            step_id="s",
        )
        return Measurement(
            server=cand.server,
            target="t",
            config_id=cand.id,
            config=cand.as_dict(),
            label=cand.label(),
            stage=stage,
            round=rnd,
            started_at="now",
            duration_s=10.0,
            candidate_dir="c",
            levels=[lv],
            score_rps=rps,
            score_p99_ms=20.0 if rps else None,
        )


def _rps(cfg: dict[str, Any], rnd: int) -> float:
    # more workers help, 2 intra-op threads hurt; a little round-to-round noise
    return 100.0 * cfg["tuning.workers"] / cfg["tuning.intra_op_threads"] + rnd


def test_coordinate_descent_finds_the_best_and_confirms_it_against_defaults(tmp_path: Path) -> None:
    exp = _exp()
    space = SearchSpace(
        knobs=(
            Knob("tuning.workers", (1, 2, 4), "s"),
            Knob("tuning.intra_op_threads", (1, 2, 4), "s"),
            Knob("tuning.io_threads", (1, 2, 4), "s"),
        )
    )
    fake = ScriptedMeasurer(_rps)
    search = Search(exp, TuneStore(tmp_path), fake, Budget(10_000), 10.0, log=lambda m: None)
    out = search.run_coordinate("torchserve", space, 10_000)
    assert out.best is not None
    assert {k: out.best.as_dict()[k] for k in ("tuning.workers", "tuning.intra_op_threads")} == {
        "tuning.workers": 4,
        "tuning.intra_op_threads": 1,
    }
    assert out.defaults.as_dict() == {
        "tuning.workers": 1,
        "tuning.intra_op_threads": 2,  # cpus / workers
        "tuning.io_threads": 2,
    }
    screened = [c for c in fake.calls if c[1] == "screen"]
    assert len(screened) <= len(sp.grid("torchserve", space)) // 2  # smarter than the grid
    confirm = [c for c in fake.calls if c[1] == "confirm"]
    assert out.defaults.id in {c[0] for c in confirm} and out.best.id in {c[0] for c in confirm}
    rounds = sorted({c[2] for c in confirm})
    assert len(rounds) >= 2
    # counterbalanced: round 2 runs the configurations in reverse order
    r1 = [c[0] for c in confirm if c[2] == 1]
    r2 = [c[0] for c in confirm if c[2] == 2]
    assert r2 == r1[::-1]
    # re-measured at the level where the leader scored, the same for every configuration
    assert {
        lv for (_, stage, _), lv in zip(fake.calls, fake.levels, strict=True) if stage == "confirm"
    } == {"concurrency=4"}


def test_a_replayed_search_measures_nothing_twice(tmp_path: Path) -> None:
    exp = _exp()
    space = SearchSpace(
        knobs=(Knob("tuning.workers", (1, 2, 4), "s"), Knob("tuning.intra_op_threads", (1, 2), "s"))
    )
    first = ScriptedMeasurer(_rps)

    class Killed(Exception):
        pass

    def dies_after_three(cfg: dict[str, Any], rnd: int) -> float:
        if len(first.calls) > 3:
            raise Killed
        return _rps(cfg, rnd)

    first.fn = dies_after_three
    with pytest.raises(Killed):
        Search(
            exp, TuneStore(tmp_path), first, Budget(10_000), 10.0, log=lambda m: None
        ).run_coordinate("pytorch", space, 10_000)
    stored, _ = TuneStore(tmp_path).read()
    assert len(stored) == 3
    second = ScriptedMeasurer(_rps)
    out = Search(
        exp, TuneStore(tmp_path), second, Budget(10_000), 10.0, log=lambda m: None
    ).run_coordinate("pytorch", space, 10_000)
    assert out.reused == 3
    assert not {(m.config_id, m.stage, m.round) for m in stored} & set(second.calls)
    keys = [m.key for m in TuneStore(tmp_path).read()[0]]
    assert len(keys) == len(set(keys))
    assert out.best is not None and out.best.as_dict()["tuning.workers"] == 4


def test_the_budget_bounds_the_search(tmp_path: Path) -> None:
    exp = _exp()
    space = sp.space_for("torchserve")
    fake = ScriptedMeasurer(lambda cfg, rnd: 50.0)
    budget = Budget(45.0)  # 10 s per measurement: at most 4
    out = Search(exp, TuneStore(tmp_path), fake, budget, 10.0, log=lambda m: None).run_coordinate(
        "torchserve", space, 45.0
    )
    assert 1 <= len(fake.calls) <= 4 and budget.spent_s <= 45.0
    assert "budget" in out.stopped or "only the defaults" in out.stopped


# ---- outcome ---------------------------------------------------------------------------------
def _m(cid: str, rnd: int, rps: float, p99: float) -> Measurement:
    lv = Level(
        param="concurrency=4",
        throughput_rps=rps,
        p50_ms=1.0,
        p99_ms=p99,
        error_fraction=0.0,
        valid=True,
        steady=True,
        slo_ok=True,
        step_id="s",
    )
    return Measurement(
        server="torchserve",
        target="t",
        config_id=cid,
        config={},
        label=cid,
        stage="confirm",
        round=rnd,
        started_at="x",
        duration_s=1.0,
        candidate_dir="c",
        levels=[lv],
        score_rps=rps,
        score_p99_ms=p99,
    )


def test_defaults_vs_best_ratio_has_a_paired_interval() -> None:
    ms = [
        _m("d", 1, 100, 40),
        _m("b", 1, 150, 30),
        _m("b", 2, 160, 31),
        _m("d", 2, 104, 41),
        _m("d", 3, 98, 39),
        _m("b", 3, 149, 29),
    ]
    r = defaults_vs_best(ms, "d", "b")
    assert r is not None
    tp = r["throughput_rps"]
    assert tp.n_pairs == 3 and tp.interval is not None
    assert tp.interval[0] < tp.ratio < tp.interval[1] and 1.4 < tp.ratio < 1.6 and tp.significant
    assert r["latency_p99_ms"].ratio < 1


def test_pareto_front_keeps_only_non_dominated_points() -> None:
    pts = [
        Point("s", "a", "c1", 100, 10, "screen", True),
        Point("s", "b", "c4", 200, 30, "screen", True),
        Point("s", "c", "c4", 150, 40, "screen", True),
        Point("s", "d", "c1", 90, 12, "screen", True),
    ]
    assert [p.label for p in front(pts)] == ["a", "b"]


def test_tuned_experiment_reparses_unchanged(tmp_path: Path) -> None:
    from servecmp.tune import tuned_experiment

    exp = load_experiment(QUICK)
    best = {
        "torchserve": sp.candidate(
            "torchserve",
            {
                "tuning.workers": 2,
                "tuning.batching.enabled": True,
                "tuning.batching.max_batch_size": 4,
                "tuning.batching.batch_timeout_ms": 5.0,
            },
        )
    }
    tuned = tuned_experiment(exp, best, "note")
    f = tmp_path / "tuned.yaml"
    f.write_text(yaml.safe_dump(tuned.model_dump(mode="json"), sort_keys=False))
    back = load_experiment(f)
    assert back.configuration == "tuned" and back.for_server("torchserve").tuning.workers == 2
    assert back.for_server("torchserve").tuning.batching.enabled
    assert back.for_server("pytorch").tuning.workers == exp.tuning.workers


def test_resume_refuses_a_directory_of_another_search(tmp_path: Path) -> None:
    from servecmp.tune import run_tune

    with pytest.raises(sp.TuneError, match="not a tune run directory"):
        run_tune(QUICK, resume=tmp_path, runs_root=tmp_path)
    (tmp_path / "tune.json").write_text(
        json.dumps(
            {
                "experiment_digest": "other",
                "strategy": "coordinate",
                "servers": ["pytorch"],
                "budget_minutes": 15.0,
            }
        )
    )
    with pytest.raises(sp.TuneError, match="experiment_digest differs"):
        run_tune(QUICK, resume=tmp_path, servers=["pytorch"], runs_root=tmp_path)


def test_objective_is_the_best_throughput_meeting_the_slo_with_few_errors() -> None:
    from servecmp.results.schema import LatencySummary, StepResult
    from servecmp.tune.measure import level_of, score

    def step(c: int, rps: float, p99: float, errors: int = 0, valid: bool = True) -> StepResult:
        return StepResult(
            run_id="r",
            step_id=f"s{c}",
            target="t",
            server="torchserve",
            protocol="rest",
            encoding="json",
            sweep="closed_loop",
            mode="closed_loop",
            concurrency=c,
            started_at="x",
            warmup_s=1,
            window_s=1,
            stop_reason="stable",
            requests=10_000,
            ok=10_000 - errors,
            transport_errors={"timeout": errors} if errors else {},
            throughput_rps=rps,
            latency_ms=LatencySummary(p50=p99 / 2, p99=p99),
            valid=valid,
        )

    m = Measurement(
        server="torchserve",
        target="t",
        config_id="c",
        config={},
        label="c",
        stage="screen",
        started_at="x",
        duration_s=1,
        candidate_dir="c",
        levels=[
            level_of(s, 100.0)
            for s in (
                step(1, 50, 20),
                step(2, 90, 60),
                step(4, 120, 150),  # p99 over the SLO
                step(8, 130, 80, errors=20),  # 0.2 % errors
                step(16, 140, 50, valid=False),
            )
        ],
    )
    score(m)
    assert (m.score_rps, m.score_p99_ms) == (90, 60)


def test_local_and_cluster_measurements_start_from_one_record() -> None:
    """Both measurers build their record with measure.start_measurement: a run directory per
    configuration, stage and round; finish() scores it and stamps the duration."""
    import time

    from servecmp.tune.measure import finish, start_measurement, target_for

    exp = _exp()
    cand = sp.candidate("torchserve", {"tuning.workers": 2})
    target = target_for(exp, "torchserve")
    a = start_measurement(cand, target, "screen", 0)
    b = start_measurement(cand, target, "confirm", 1)
    assert (a.server, a.target, a.config_id, a.label) == (
        "torchserve",
        target.name,
        cand.id,
        cand.label(),
    )
    assert a.config == cand.as_dict() and not a.levels and a.score_rps == 0.0
    assert a.candidate_dir != b.candidate_dir and a.key != b.key
    assert Path(b.candidate_dir).parts[:2] == ("candidates", "torchserve")
    b.levels = [
        Level(
            param="concurrency=1",
            throughput_rps=40.0,
            p50_ms=5.0,
            p99_ms=9.0,
            error_fraction=0.0,
            valid=True,
            steady=True,
            slo_ok=True,
            step_id="s1",
        )
    ]
    t0 = time.monotonic() - 2.0
    assert finish(b, t0) is b and b.score_rps == 40.0 and b.duration_s >= 2.0


# ---- protocol-bound knobs, logging, confirmation, rerun interval -----------------------------
def _kserve_exp(*protocols: str) -> Any:
    return parse_experiment(
        {
            "name": "k",
            "model": "tiny",
            "resources": {"cpus": 2},
            "targets": [{"server": "kserve", "protocol": p} for p in protocols],
        }
    )


def test_kserve_workers_are_held_when_grpc_is_measured_too() -> None:
    """The search measures KServe on one target; workers multiply REST processes only, so with a
    gRPC target in the experiment they are not searched (nothing reaches gRPC unseen)."""
    full = sp.space_for("kserve")
    held, notes = sp.for_experiment("kserve", full, _kserve_exp("rest", "grpc"))
    assert "tuning.workers" not in {k.field for k in held.knobs}
    assert notes and "tuning.workers" in notes[0] and "grpc" in notes[0]
    assert all(c.as_dict().get("tuning.workers") is None for c in sp.grid("kserve", held))
    rest_only, notes = sp.for_experiment("kserve", full, _kserve_exp("rest"))
    assert "tuning.workers" in {k.field for k in rest_only.knobs} and not notes
    assert "tuning.io_threads" not in {k.field for k in full.knobs}  # --max_threads changes nothing


@pytest.mark.parametrize("server", ["torchserve", "kserve"])
def test_logging_is_a_knob_and_default_renders_byte_identical(server: str) -> None:
    assert next(k.values for k in sp.space_for(server).knobs if k.field == "tuning.logging") == (
        "default",
        "quiet",
    )
    targets = [{"server": server, "protocol": "rest"}]
    base = parse_experiment({"name": "t", "model": "tiny", "targets": targets})
    same = parse_experiment(
        {"name": "t", "model": "tiny", "targets": targets, "tuning": {"logging": "default"}}
    )
    quiet = parse_experiment(
        {"name": "t", "model": "tiny", "targets": targets, "tuning": {"logging": "quiet"}}
    )
    from servecmp.servers import registry

    placement = Placement.local(
        {server: {"models": "/m", "config": "/c d"}}, adapters=[registry.get(server)]
    )
    a, b, q = (
        registry.get(server).render(e.for_server(server), placement) for e in (base, same, quiet)
    )
    assert a.files == b.files and a.env == b.env and base.digest() == same.digest()
    assert (
        "tuning.logging" not in base.fairness_settings()
        and quiet.fairness_settings()["tuning.logging"] == "quiet"
    )
    assert set(q.files) - set(a.files)  # the quiet config file


def test_torchserve_quiet_logging_points_log4j_at_its_file() -> None:
    from servecmp.servers.torchserve import log4j

    targets = [{"server": "torchserve", "protocol": "rest"}]
    quiet = parse_experiment(
        {
            "name": "t",
            "model": "tiny",
            "targets": targets,
            "configuration": "tuned",
            "tuning": {"per_server": {"torchserve": {"logging": "quiet"}}},
        }
    )
    from servecmp.servers import registry

    placement = Placement.local(
        {"torchserve": {"models": "/m", "config": "/c d"}}, adapters=[registry.get("torchserve")]
    )
    files = registry.get("torchserve").render(quiet.for_server("torchserve"), placement).files
    vmargs = parse_properties(files["config.properties"])[
        "vmargs"
    ].split()  # ts/model_server.py splits it
    assert "-Dlog4j.configurationFile=file:///c%20d/log4j2.xml" in vmargs
    xml = files[log4j.FILE]
    assert '<Logger name="org.pytorch.serve" level="warn" additivity="false">' in xml
    assert log4j.levels(xml) == {**log4j.levels(log4j.default_xml()), **log4j.QUIET_LEVELS}
    # TorchServe 0.12.0's own file (in the installed jar): org.pytorch.serve at DEBUG, root INFO
    upstream = log4j.levels(log4j.default_xml())
    assert upstream["org.pytorch.serve"] == "debug" and upstream["Root"] == "info"
    assert upstream["ACCESS_LOG"] == "info"
    # the quiet file differs from upstream's only in levels and that one additivity
    quiet_tree, base_tree = ET.fromstring(xml), ET.fromstring(log4j.default_xml())
    for tree in (quiet_tree, base_tree):
        for el in tree.iter():
            el.attrib.pop("level", None)
            el.attrib.pop("additivity", None)
            el.tail = el.text = (el.text or "").strip() or None
    assert ET.tostring(quiet_tree) == ET.tostring(base_tree)


def test_log4j_levels_name_only_loggers_torchserve_has() -> None:
    from servecmp.servers.torchserve import log4j

    with pytest.raises(ValueError, match="no logger"):
        log4j.render({"org.pytorch.servee": "warn"})


def test_confirmation_rounds_are_whole_abba_pairs(tmp_path: Path) -> None:
    space = SearchSpace(
        knobs=(Knob("tuning.workers", (1, 2), "s"), Knob("tuning.intra_op_threads", (1, 2), "s"))
    )
    fake = ScriptedMeasurer(_rps)
    out = Search(
        _exp(), TuneStore(tmp_path), fake, Budget(10_000), 10.0, log=lambda m: None
    ).run_coordinate("torchserve", space, 10_000, rounds=3)
    confirm = [c for c in fake.calls if c[1] == "confirm"]
    rounds = sorted({c[2] for c in confirm})
    assert len(rounds) % 2 == 0 and len(rounds) >= 2
    orders = [[c[0] for c in confirm if c[2] == r] for r in rounds]
    for i, order in enumerate(orders):
        assert order == (orders[0] if i % 2 == 0 else orders[0][::-1])  # A B, B A, A B, B A
    assert out.best is not None


def test_rerun_interval_is_a_t_prediction_interval() -> None:
    from scipy import stats

    from servecmp.tune.report import rerun_interval

    xs = [61.8, 84.0, 80.4]
    ri = rerun_interval(xs)
    assert ri is not None and ri.n == 3
    mean = sum(xs) / 3
    sd = (sum((x - mean) ** 2 for x in xs) / 2) ** 0.5
    half = stats.t.ppf(0.975, 2) * sd * (1 + 1 / 3) ** 0.5
    assert ri.low == pytest.approx(mean - half) and ri.high == pytest.approx(mean + half)
    assert ri.low < min(xs) and ri.high > max(xs)  # wider than the rounds themselves at n = 3
    assert rerun_interval([80.0]) is None


def test_burn_in_is_bounded_in_time_and_count() -> None:
    import time

    from servecmp.load.clients.base import Outcome
    from servecmp.tune import burnin

    class Client:
        def __enter__(self) -> Client:
            return self

        def __exit__(self, *a: Any) -> None: ...

    calls: list[int] = []

    def fake_execute(client: Any, index: int) -> Any:
        calls.append(index)
        time.sleep(0.001)
        return type("R", (), {"ok": Outcome.ok is Outcome.ok})()

    orig = burnin.execute
    burnin.execute = fake_execute  # type: ignore[assignment]
    try:
        b = burnin.burn_in(Client, n_payloads=4, concurrency=3, seconds=30.0, max_requests=50)
        assert b.requests == 50 and len(calls) == 50 and max(calls) == 3 and b.seconds < 30
        calls.clear()
        t = burnin.burn_in(Client, n_payloads=4, concurrency=2, seconds=0.2, max_requests=10**9)
        assert t.seconds < 5 and 0 < t.requests == len(calls)
    finally:
        burnin.execute = orig
    assert (
        burnin.level_concurrency("concurrency=4") == 4 and burnin.level_concurrency("rate=40") == 1
    )


def test_tune_uses_the_run_pipelines_public_pinning() -> None:
    import inspect
    import os

    from servecmp import tune
    from servecmp.run import orchestrate
    from servecmp.run.cpus import pinned

    assert "_pinned" not in inspect.getsource(tune) and not hasattr(orchestrate, "_pinned")
    before = os.sched_getaffinity(0)
    with pinned((sorted(before)[0],)):
        assert os.sched_getaffinity(0) == {sorted(before)[0]}
    assert os.sched_getaffinity(0) == before


def test_bench_tune_default_experiment_tunes_kserve() -> None:
    """scripts/bench_tune.py tunes every server of quick.yaml: KServe is among them, available when
    its venv is, and searched on the knobs that reach every protocol it is measured over."""
    from servecmp.servers.kserve.local import KServeServer
    from servecmp.tune import _unavailable, servers_of

    exp = load_experiment(QUICK)
    assert "kserve" in servers_of(exp, None)
    space, notes = sp.for_experiment("kserve", sp.space_for("kserve"), exp)
    assert {k.field for k in space.knobs} == {"tuning.intra_op_threads", "tuning.logging"} and notes
    assert _unavailable("kserve") == KServeServer.availability()
    if (ROOT / ".venv-kserve" / "bin" / "python").is_file():
        assert _unavailable("kserve") is None


# ---- the tuned configuration's latency breakdown ----------------------------------------------
def _bd(outside: float, queue: float | None, compute: float, flagged: str | None = None) -> Any:
    from servecmp.results.schema import Breakdown, BreakdownPart

    parts = [
        BreakdownPart(part="outside", ms=outside, source="client mean - total"),
        BreakdownPart(
            part="queue", ms=queue, source="q", why=None if queue is not None else "no queue metric"
        ),
        BreakdownPart(part="pre_post", ms=None, source="", why="not reported by X"),
        BreakdownPart(part="compute", ms=compute, source="c"),
    ]
    return Breakdown(
        client_mean_ms=outside + (queue or 0.0) + compute, parts=parts, flagged=flagged
    )


def _bd_m(cid: str, stage: Stage, rnd: int, bd: Any, slo_ok: bool = True) -> Measurement:
    lv = Level(
        param="concurrency=4",
        throughput_rps=50.0,
        p50_ms=5.0,
        p99_ms=9.0,
        error_fraction=0.0,
        valid=True,
        steady=True,
        slo_ok=slo_ok,
        step_id="s",
        breakdown=bd,
    )
    return Measurement(
        server="torchserve",
        target="torchserve-rest-json",
        config_id=cid,
        config={},
        label=f"cfg {cid}",
        stage=stage,
        round=rnd,
        started_at="now",
        duration_s=1.0,
        candidate_dir="c",
        levels=[lv],
        score_rps=50.0,
    )


def test_the_tuned_configurations_breakdown_is_the_median_over_its_confirmation_rounds(
    tmp_path: Path,
) -> None:
    from servecmp.tune import report
    from servecmp.tune.breakdown import tuned_breakdown

    ms = [
        _bd_m("best", "screen", 0, _bd(9.0, 9.0, 9.0)),  # screening: not used once confirmed
        _bd_m("best", "confirm", 1, _bd(1.0, 2.0, 3.0)),
        _bd_m("best", "confirm", 2, _bd(3.0, 4.0, 5.0)),
        _bd_m(
            "best", "confirm", 3, _bd(50.0, 0.0, 0.0, flagged="its own time exceeds the client's")
        ),
        _bd_m("defaults", "confirm", 1, _bd(7.0, 7.0, 7.0)),
    ]
    t = tuned_breakdown(ms, "torchserve", "best", "cfg best")
    assert t is not None and (t.stage, t.param, t.rounds) == ("confirm", "concurrency=4", 2)
    assert t.parts == {"outside": 2.0, "queue": 3.0, "pre_post": None, "compute": 4.0}
    assert t.why["pre_post"] == "not reported by X"  # never 0
    assert t.flagged == ["its own time exceeds the client's"]
    store = TuneStore(tmp_path)
    for m in ms:
        store.append(m)
    summary = {
        "experiment": "e",
        "strategy": "coordinate",
        "budget_minutes": 1.0,
        "measured_s": 1.0,
        "wall_s": 1.0,
        "servers": [
            {
                "server": "torchserve",
                "defaults_label": "cfg defaults",
                "best_label": "cfg best",
                "best_id": "best",
                "stopped": "",
                "ratios": {},
            }
        ],
    }
    md = report.build(tmp_path, summary, 100.0)[0].read_text()
    section = md.split("## Where the tuned configuration's time goes")[1].split("\n## ")[0]
    row = next(r for r in section.splitlines() if r.startswith("| torchserve |"))
    assert (
        "| cfg best | concurrency=4 | 9 ms | 2 ms (22%) | 3 ms (33%) | not reported by X |" in row
    )
    assert row.endswith("| 2 (confirm) |")
    assert "self-check failed in a round, not used: its own time exceeds" in section


def test_a_tuned_configuration_without_a_breakdown_says_why() -> None:
    from servecmp.tune.breakdown import tuned_breakdown

    t = tuned_breakdown([_bd_m("best", "screen", 0, None)], "torchserve", "best", "cfg best")
    assert t is not None and t.stage == "screen" and t.rounds == 0
    assert t.not_reported is not None and "no metrics page" in t.not_reported
    assert (
        tuned_breakdown([_bd_m("best", "screen", 0, None, slo_ok=False)], "torchserve", "best", "x")
        is None
    )


def test_a_server_whose_defaults_were_the_only_measurement_is_not_said_to_have_won() -> None:
    """A 15-minute search of quick.yaml spent KServe's share on its defaults alone: the summary
    said "the defaults won the re-measurement (0.0 req/s mean)" although nothing was re-measured."""
    from servecmp.tune.report import defaults_outcome

    alone = {"defaults_won": True, "best_confirmed_rps": None, "best_screen_rps": 70.9}
    text = defaults_outcome(alone)
    assert "re-measurement" not in text and "0.0" not in text
    assert "only the defaults were measured" in text and "70.9 req/s (single measurement)" in text
    won = {"defaults_won": True, "best_confirmed_rps": 101.25, "best_screen_rps": 99.0}
    assert defaults_outcome(won) == "the defaults won the re-measurement (101.2 req/s mean)"
