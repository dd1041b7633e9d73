"""``servecmp tune``: each server at its best under the experiment's fixed budget.

For every server of the experiment (or ``--server``), search its own knobs (declared next to its
fairness mapping: ``servecmp/servers/<name>/search.py``; baselines: ``servecmp/servers/inprocess.py``) for the
highest throughput whose p99 meets ``load.slo_p99_ms`` with <= 0.1 % errors, within a time budget
shared by the servers, resumable after a crash. Writes ``loadtests/experiments/tuned-<name>.yaml`` (the
experiment with ``configuration: tuned`` and ``tuning.per_server``, which ``servecmp run`` and
the Helm path accept unchanged) and a report with "defaults vs best" per server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from servecmp.experiment import Experiment, load_experiment, parse_experiment
from servecmp.tune.space import (
    TuneError,
    check_budget,
    for_experiment,
    grid,
    space_for,
    validate_space,
)

__all__ = ["TuneError", "run_tune"]

TUNE_FILE = "tune.json"


_log = logging.getLogger(__name__).info


def servers_of(exp: Experiment, only: list[str] | None) -> list[str]:
    from servecmp.servers import registry

    present = [name for name in registry.names() if any(t.server == name for t in exp.targets)]
    if not only:
        return present
    for name in only:
        if name not in present:
            raise TuneError(
                f"--server {name!r}: no target of this server in {exp.name!r}; "
                f"its servers: {', '.join(present)}"
            )
    return [s for s in present if s in only]


def _unavailable(server: str) -> str | None:
    from servecmp.servers import registry

    adapter = registry.get(server)
    return None if adapter.is_inprocess else adapter.launcher().availability()


def _open_dir(exp: Experiment, spec: dict[str, Any], runs_root: Path, resume: Path | None) -> Path:
    if resume is None:
        d = runs_root.resolve() / f"tune-{datetime.now(UTC):%Y%m%d-%H%M%S}-{exp.name}"
        d.mkdir(parents=True, exist_ok=False)
        (d / TUNE_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        (d / "experiment.yaml").write_text(
            yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False)
        )
        return d
    d = resume.resolve()
    f = d / TUNE_FILE
    if not f.is_file():
        raise TuneError(f"--resume {resume}: not a tune run directory (no {TUNE_FILE})")
    stored = json.loads(f.read_text())
    for key in ("experiment_digest", "strategy", "servers", "budget_minutes", "cluster"):
        if stored.get(key, False if key == "cluster" else None) != spec.get(key):
            raise TuneError(
                f"--resume {resume}: {key} differs from the stored run "
                f"({stored.get(key)!r} there, {spec.get(key)!r} now); resume with the same arguments"
            )
    return d


def tuned_experiment(exp: Experiment, best: dict[str, Any], note: str) -> Experiment:
    """``exp`` with each tuned server's best as its ``tuning.per_server`` entry."""
    data = exp.model_dump(mode="json")
    data["name"] = f"tuned-{exp.name}"[:41]
    data["configuration"] = "tuned"
    data["description"] = (exp.description + " " if exp.description else "") + note
    data["tuning"]["per_server"] = {
        s: c.server_tuning(exp).model_dump(mode="json", exclude_none=True) for s, c in best.items()
    }
    return parse_experiment(data, "tuned experiment")


def run_tune(
    experiment: str | Path,
    *,
    budget_minutes: float = 15.0,
    servers: list[str] | None = None,
    resume: Path | None = None,
    strategy: str = "coordinate",
    runs_root: Path = Path("runs"),
    artifacts_root: Path = Path("build/models"),
    out: Path | None = None,
    rounds: int = 3,
    cluster: bool = False,
) -> Path:
    """Search, store, write the tuned experiment and the report; returns the tune directory."""
    from servecmp.run import cpus as cpu_plan
    from servecmp.run import watchdog
    from servecmp.run.cpus import pinned
    from servecmp.run.procs import install_handlers
    from servecmp.tune import report
    from servecmp.tune.measure import LocalMeasurer
    from servecmp.tune.search import Budget, Search, ServerOutcome, describe, planned_measurements
    from servecmp.tune.space import defaults_candidate
    from servecmp.tune.store import TuneStore

    if strategy not in ("coordinate", "grid"):
        raise TuneError(f"strategy {strategy!r}: expected 'coordinate' or 'grid'")
    exp = load_experiment(experiment)
    names = servers_of(exp, servers)
    if cluster:
        from servecmp.tune.cluster import unavailable_reason

        why = unavailable_reason()
        if why:
            raise TuneError(f"--cluster: {why}")
    spaces, held = {}, {}
    for name in names:
        full = space_for(name)
        validate_space(name, full)
        spaces[name], held[name] = for_experiment(name, full, exp)
        if cluster and any(k.field == "tuning.logging" for k in spaces[name].knobs):
            # the charts mount only each server's chart_files, not the generated log configs
            spaces[name] = replace(
                spaces[name],
                knobs=tuple(k for k in spaces[name].knobs if k.field != "tuning.logging"),
            )
            held[name].append(
                f"{name}: tuning.logging held at the experiment's value: the chart does "
                "not mount the generated log config (local runs only)"
            )
    empty = {n: "; ".join(held[n]) for n in names if not spaces[n].knobs}
    names = [n for n in names if n not in empty]
    if not names:
        raise TuneError("nothing to search: " + "; ".join(empty.values()))
    budget_s = budget_minutes * 60
    min_s = check_budget(exp, budget_s)
    sizes = {n: len(grid(n, spaces[n])) for n in names}
    spec: dict[str, Any] = {
        "experiment": exp.name,
        "experiment_digest": exp.digest(),
        "strategy": strategy,
        "cluster": cluster,
        "servers": names,
        "budget_minutes": budget_minutes,
        "space_sizes": sizes,
    }
    tune_dir = _open_dir(exp, spec, runs_root, resume)
    _log(
        f"{'resuming' if resume else 'tune run'} {tune_dir} ({strategy}, budget {budget_minutes:g} min, "
        f"servers {', '.join(names)})"
    )
    for note in [
        *(x for n in names for x in held[n]),
        *(f"{n}: not tuned ({why})" for n, why in empty.items()),
    ]:
        _log(note)
    install_handlers()
    placement = cpu_plan.plan(exp.resources.cpus, exp.resources.pinning)
    store = TuneStore(tune_dir)
    measurer: Any = LocalMeasurer(exp, tune_dir, artifacts_root.resolve(), log=_log)
    if cluster:
        from servecmp.tune.cluster import ClusterMeasurer

        measurer = ClusterMeasurer(exp, tune_dir)
    budget = Budget(budget_s)
    search = Search(exp, store, measurer, budget, min_s, log=_log)
    t0 = time.monotonic()
    load_before = os.getloadavg()
    outcomes = []
    (tune_dir / "logs").mkdir(exist_ok=True)
    watchdog.start(tune_dir / "logs" / "watchdog.log")  # servers die with us, even on kill -9
    with contextlib.ExitStack() as stack:
        stack.callback(watchdog.stop)
        stack.enter_context(pinned(placement.generator_cpus if placement.pinned else None))
        # small spaces first: what they leave of their share rolls over to the larger ones
        order = sorted(names, key=lambda n: sizes[n])
        reasons = {
            n: (
                (
                    "in-process baseline: no cluster form (tune it without --cluster)"
                    if n in ("pytorch", "tensorflow")
                    else None
                )
                if cluster
                else _unavailable(n)
            )
            for n in order
        }
        for name in order:
            reason = reasons[name]
            if reason:
                _log(f"{name}: unavailable — {reason}")
                outcomes.append(
                    ServerOutcome(
                        name, defaults_candidate(name, exp, spaces[name]), None, unavailable=reason
                    )
                )
        avail = [n for n in order if not reasons[n]]
        # each server's share of what is left, by how many measurements its search plans
        weight = {
            n: (sizes[n] if strategy == "grid" else planned_measurements(spaces[n])) for n in avail
        }
        for i, name in enumerate(avail):
            share_end = budget.spent_s + budget.left_s * weight[name] / sum(
                weight[n] for n in avail[i:]
            )
            _log(
                f"{name}: {sizes[name]} configurations in its space; "
                f"share {share_end - budget.spent_s:.0f} s"
            )
            if strategy == "grid":
                o = search.run_grid(name, spaces[name], share_end)
            else:
                o = search.run_coordinate(name, spaces[name], share_end, rounds=rounds)
            _log(f"{name}: {o.stopped}; best {o.best.label() if o.best else '—'}")
            outcomes.append(o)
    wall = time.monotonic() - t0
    records, _ = store.read()
    summary: dict[str, Any] = {
        "experiment": exp.name,
        "experiment_digest": exp.digest(),
        "strategy": strategy,
        "budget_minutes": budget_minutes,
        "measured_s": budget.spent_s,
        "wall_s": wall,
        "loadavg_at_start": list(load_before),
        "loadavg_at_end": list(os.getloadavg()),
        "placement": placement.as_dict(),
        "tune_dir": str(tune_dir),
        "servers": [],
    }
    best: dict[str, Any] = {}
    for o in outcomes:
        row = describe(o)
        row["defaults_label"] = o.defaults.label()
        row["held"] = held.get(o.server, [])
        if o.best is not None and not o.unavailable:
            best[o.server] = o.best
            row["best_id"] = o.best.id
            confirm = [m for m in records if m.server == o.server and m.stage == "confirm"]
            ratios = report.defaults_vs_best(confirm, o.defaults.id, o.best.id)
            row["defaults_won"] = o.best.id == o.defaults.id  # no ratio: best is the defaults
            if strategy == "grid" or row["defaults_won"]:
                ratios = None
            row["ratios"] = {k: v.__dict__ for k, v in (ratios or {}).items()}
            screened = {
                m.config_id: m
                for m in records
                if m.server == o.server and m.stage in ("screen", "grid")
            }
            row["best_screen_rps"] = (
                screened[o.best.id].score_rps if o.best.id in screened else None
            )
            cm = [m.score_rps for m in confirm if m.config_id == o.best.id]
            row["best_confirmed_rps"] = sum(cm) / len(cm) if cm else None
            ri = report.rerun_interval(cm)
            row["rerun_interval"] = ri.__dict__ if ri else None
        summary["servers"].append(row)
    (tune_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
    )
    if best:
        note = f"Each server at its best found by `servecmp tune` ({tune_dir.name})."
        tuned = tuned_experiment(exp, best, note)
        header = _header(tune_dir, summary, experiment)
        data = tuned.model_dump(mode="json")
        data["tuning"]["per_server"] = {
            s: {k: v for k, v in o.items() if v is not None}
            for s, o in data["tuning"]["per_server"].items()
        }
        text = header + yaml.safe_dump(data, sort_keys=False)
        (tune_dir / "tuned.yaml").write_text(text)
        if out is not None and strategy != "grid":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            _log(f"tuned experiment: {out}")
    _md, html_path = report.build(tune_dir, summary, exp.load.slo_p99_ms)
    _print(summary)
    _log(f"report: {html_path}")
    return tune_dir


def _header(tune_dir: Path, summary: dict[str, Any], experiment: str | Path) -> str:
    from servecmp.tune import report

    lines = [
        f"# Tuned by `servecmp tune {experiment} --budget-minutes {summary['budget_minutes']:g}`",
        f"# (tune run {tune_dir.name}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, strategy {summary['strategy']}).",
        "# Each server runs its own best configuration (tuning.per_server) inside the same",
        "# resources budget; `servecmp run` and the Helm path read it unchanged.",
    ]
    for s in summary["servers"]:
        if s.get("unavailable"):
            lines.append(
                f"# {s['server']}: not tuned (unavailable: {s['unavailable']}); runs the shared settings."
            )
        else:
            tp = (s.get("ratios") or {}).get("throughput_rps")
            ratio = f", throughput under SLO x{tp['ratio']:.2f} vs defaults" if tp else ""
            if s.get("defaults_won"):
                ratio = f" ({report.defaults_outcome(s)})"
            lines.append(f"# {s['server']}: {s['best_label']}{ratio}")
            ri = s.get("rerun_interval")
            if ri:
                lines.append(
                    f"#   a rerun is expected at {ri['low']:.1f}-{ri['high']:.1f} req/s ({ri['text']})"
                )
    return "\n".join(lines) + "\n"


def _print(summary: dict[str, Any]) -> None:
    from servecmp.tune import report

    print(
        f"\nservecmp tune {summary['experiment']} ({summary['strategy']}): measured "
        f"{summary['measured_s']:.0f} s, wall {summary['wall_s']:.0f} s of a "
        f"{summary['budget_minutes']:g} min budget"
    )
    for s in summary["servers"]:
        if s.get("unavailable"):
            print(f"  {s['server']:<11} unavailable: {s['unavailable']}")
            continue
        tp = (s.get("ratios") or {}).get("throughput_rps")
        if tp:
            iv = tp["interval"]
            r = (
                f"best/defaults x{tp['ratio']:.2f}"
                + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else "")
                + f" ({tp['defaults']:.1f} -> {tp['best']:.1f} req/s)"
            )
        elif s.get("defaults_won"):
            r = report.defaults_outcome(s)
        else:
            r = f"best {s.get('best_screen_rps') or 0:.1f} req/s (single measurement)"
        print(f"  {s['server']:<11} {s['best_label']}: {r}")
        ri = s.get("rerun_interval")
        if ri:
            print(
                f"  {'':<11} rerun expected at {ri['low']:.1f}-{ri['high']:.1f} req/s ({ri['text']})"
            )
