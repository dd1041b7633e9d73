"""Build ``<run_dir>/report/report.html`` + ``report.md`` from stored results only.

from servecmp.report.build import build_report
paths = build_report(Path("runs/quick-…"), compare=None, force=False)   # -> ReportPaths

servecmp report RUN_DIR [--compare OTHER] [--force]   # -> build_report_cli(...)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from servecmp.experiment import ExperimentError
from servecmp.report import plots as pl
from servecmp.report.cells import param_label, params, targets
from servecmp.report.compare import CompareRefused, check_comparable, delta_table
from servecmp.report.data import ReportError, RunData, load_run
from servecmp.report.format import fmt_bytes, fmt_pct
from servecmp.report.notes import note_ref
from servecmp.report.rules import FRICTION_RULE, NOISE_RULE, REPRESENTATIVE_RULE
from servecmp.report.sections import sections
from servecmp.report.slo import MAX_ERROR_FRACTION_FOR_SLO, STANDARD_SLOS_MS, summary_slo
from servecmp.report.stats import BETWEEN_RUN
from servecmp.report.table import Table
from servecmp.report.tables.all_steps import all_steps
from servecmp.report.tables.differences import differences
from servecmp.report.tables.friction import friction_tables
from servecmp.report.tables.head_to_head import head_to_head
from servecmp.report.tables.model_card import model_card_tables
from servecmp.report.tables.notes import notes_table
from servecmp.report.tables.overhead import overhead
from servecmp.report.tables.recommendations import recommendations
from servecmp.report.tables.resources import resource_table
from servecmp.report.tables.side_by_side import side_by_side
from servecmp.report.tables.summary import summary_friction, summary_missing, summary_tables
from servecmp.report.templates import render_html, render_md
from servecmp.results.schema import FormatVersionError
from servecmp.results.store import StoreError

__all__ = ["CompareRefused", "ReportError", "ReportPaths", "build_report", "build_report_cli"]

SLO_RULE = (
    "For each p99 latency SLO (the standard levels {levels} ms plus the experiment's "
    "load.slo_p99_ms and any per-step SLO), per protocol: each server's highest throughput over its "
    "valid steps whose p99 meets the SLO with at most {err} of requests failed (any target of that "
    "server and protocol with the common encoding; native-encoding extras and baselines excluded, see the side-by-side tables for them). The recommendation is the "
    "server with the highest such throughput when it beats the runner-up under the noise rule below (“no data”: a server's target was unavailable, reason in "
    "Targets); the resource cost is the server CPU measured during that "
    "step and the peak RSS from the friction measurements (or the Prometheus memory series)."
)


KEY_PLOTS = ("plot-latency-throughput", "plot-percentiles")


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path

    def __str__(self) -> str:  # what a log line shows: the files, not a repr
        return f"{self.html} and {self.markdown}"


def _version() -> str:
    try:
        return metadata.version("servecmp")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _kv(pairs: list[tuple[str, Any]]) -> Table:
    t = Table(["item", "value"], [])
    for k, v in pairs:
        t.add([k, "—" if v is None or v == "" else str(v)])
    return t


def _kind_rows(m: Any) -> list[tuple[str, Any]]:
    """kind runs: what served (image digests, runtimes the servers report) and CPU sharing."""
    rows: list[tuple[str, Any]] = []
    for server, info in sorted(m.servers.items()):
        if not info.get("deployed", True):
            rows.append((f"{server}: deployment", "not deployed"))
            continue
        imgs = "; ".join(
            f"{i['image']} ({i.get('digest') or 'digest not reported'})"
            for i in info.get("images", [])
        )
        rt = ", ".join(f"{k} {v}" for k, v in (info.get("runtime") or {}).items())
        rows += [
            (f"{server}: image", imgs or None),
            (f"{server}: runtime (reported by the server)", rt or None),
        ]
    if m.cluster:
        c = m.cluster
        nodes = ", ".join(
            f"{n} ({v.get('role') or '-'}): {v.get('allocatable_cpu')} CPU"
            for n, v in c.get("nodes", {}).items()
        )
        rows += [
            ("kind: host CPUs", f"{c.get('host_cpus')} ({c.get('host_cpus_source')})"),
            ("kind: node allocatable CPUs", nodes or None),
            (
                "kind: server and generator can contend",
                "yes" if c.get("server_and_generator_can_contend") else "no",
            ),
            ("kind: CPU sharing", c.get("note")),
        ]
    return rows


def configuration_label(run: RunData) -> str:
    """Which configuration the servers ran (``servecmp tune``): the shared defaults, or each
    server's own tuned one (``tuning.per_server``)."""
    exp = run.experiment
    if exp is None or exp.configuration == "defaults":
        return "defaults (every server runs the experiment's shared settings)"
    own = "; ".join(
        f"{s}: {o.model_dump(mode='json', exclude_none=True)}"
        for s, o in sorted(exp.tuning.per_server.items())
    )
    return f"tuned (each server runs its own tuned configuration: {own or 'none listed'})"


def provenance_table(run: RunData) -> Table:
    m = run.meta
    host = m.host
    load = m.load
    stab = load.get("stability") or {}
    pl_ = m.placement
    versions = ", ".join(f"{k} {v if v else 'not installed'}" for k, v in m.versions.items())
    measured = [s.measured_s for s in run.steps]
    enc = m.payload.get("encodings") or {}
    pairs: list[tuple[str, Any]] = [
        ("experiment", m.experiment_name),
        ("experiment hash (digest)", m.experiment_digest),
        ("configuration", configuration_label(run)),
        ("run id", m.run_id),
        ("created", m.created_at),
        ("versions", versions),
        ("CPU model", host.get("cpu_model")),
        (
            "cores (logical / physical / usable)",
            f"{host.get('logical_cores', '?')} / {host.get('physical_cores', '?')} / {host.get('usable_cores', '?')}",
        ),
        ("memory", fmt_bytes(host["memory_bytes"]) if host.get("memory_bytes") else None),
        ("platform", host.get("platform")),
        ("CPU placement: pinned", pl_.get("pinned", "not recorded")),
        ("CPU placement: server CPUs", _cpus(pl_.get("server_cpus"))),
        ("CPU placement: generator CPUs", _cpus(pl_.get("generator_cpus"))),
        ("CPU placement: note", pl_.get("note")),
        ("model", m.payload.get("model")),
        ("batch size", m.payload.get("batch_size")),
        ("payload encodings", ", ".join(f"{k}: {v}" for k, v in enc.items()) or None),
        ("seeds", ", ".join(f"{k} {v}" for k, v in m.seeds.items()) or None),
        ("load profile", f"{load.get('profile', '?')} (arrival {load.get('arrival', '?')})"),
        ("load levels", _levels(load)),
        ("warm-up", f"{load['warmup_s']:g} s" if "warmup_s" in load else None),
        (
            "measurement window",
            f"{stab['window_s']:g} s x {stab.get('windows', '?')} reported (max {stab.get('max_windows', '?')}, tolerance {stab.get('tolerance', '?')})"
            if "window_s" in stab
            else None,
        ),
        (
            "measured durations",
            f"{min(measured):.1f}-{max(measured):.1f} s per step, {sum(measured):.1f} s total over {len(measured)} steps"
            if measured
            else "no step",
        ),
        ("p99 SLO (experiment)", f"{load['slo_p99_ms']:g} ms" if "slo_p99_ms" in load else None),
        (
            "unavailable targets",
            "; ".join(
                f"{t.name}: {note_ref(run, t.unavailable)}" for t in targets(run) if t.unavailable
            )
            or "none",
        ),
        ("interleaved rounds (load.repeats)", _rounds(load, run)),
        (
            "in-process baselines measured in",
            "round 1 only" if load.get("baseline_rounds") == "first" else "every round",
        ),
        ("stable-verdict rule", BETWEEN_RUN.statement()),
    ]
    for note in m.notes:
        pairs.append(("note", note))
    pairs += _kind_rows(m)
    return _kv(pairs)


def _cpus(v: Any) -> str:
    if v is None:
        return "not recorded"
    if isinstance(v, list | tuple):
        return ",".join(str(c) for c in v) or "(none)"
    return str(v)


def _rounds(load: dict[str, Any], run: RunData) -> str:
    """The rounds the steps ran, and the planned number when the run stopped short of it (runs
    stored before the plan was recorded: the steps' rounds alone)."""
    ran = len({s.repeat for s in run.steps})
    planned = load.get("repeats")
    if not ran:
        return f"none of {planned} planned" if planned else "no step"
    if planned is None or planned == ran:
        return str(ran)
    return f"{ran} of {planned} planned"


def _levels(load: dict[str, Any]) -> str | None:
    prof = load.get("profile")
    if prof == "closed_loop":
        return f"concurrency {load.get('concurrency')}"
    if prof == "rate_sweep":
        return f"rates {load.get('rates')} req/s"
    if prof == "open_loop":
        return f"rate {load.get('rate')} req/s"
    return None


def targets_table(run: RunData) -> Table:
    t = Table(["target", "kind", "server", "protocol", "encoding", "status", "steps"], [])
    for ti in targets(run):
        n = sum(1 for s in run.steps if s.target == ti.name)
        status = (
            note_ref(run, ti.unavailable)
            if ti.unavailable
            else ("available" if ti.name in run.availability else "availability not recorded")
        )
        t.add(
            [ti.name, ti.kind, ti.server, ti.protocol, ti.encoding, status, str(n)],
            ["", "", "", "", "", "unavail" if ti.unavailable else "", ""],
        )
    return t


def _context(run: RunData, other: RunData | None, compare_warnings: list[str]) -> dict[str, Any]:
    warnings = list(run.warnings)
    if run.truncated_steps:
        warnings.insert(
            0,
            f"steps.jsonl ends with a truncated line (the run was interrupted while writing a step); this report shows the {len(run.steps)} complete step(s) only.",
        )
    plots = pl.all_plots(run)
    extra = sections(run)
    res_table, res_note = resource_table(run)
    tables: dict[str, Table] = {
        "notes": notes_table(run),
        "differences": differences(run),
        "provenance": provenance_table(run),
        "targets": targets_table(run),
        "recommendations": recommendations(run),
        "head_to_head": head_to_head(run),
        "overhead": overhead(run),
        "resources": res_table,
        "all_steps": all_steps(run),
    }
    tables.update(model_card_tables(run))
    if other is not None:
        tables["compare"] = delta_table(run, other)
    return {
        "run": run,
        "compare": other,
        "compare_warnings": compare_warnings,
        "warnings": warnings,
        "servecmp_version": _version(),
        "tables": tables,
        "side_by_side": [(param_label(p), side_by_side(run, p)) for p in params(run)],
        "friction": friction_tables(run),
        "plots": plots,
        "key_plots": [p for p in plots if p.id in KEY_PLOTS],
        "other_plots": [p for p in plots if p.id not in KEY_PLOTS],
        "summary": summary_tables(run),
        "summary_friction": summary_friction(run),
        "summary_missing": summary_missing(run),
        "summary_slo": summary_slo(run),
        "plot_divs": pl.plot_html(plots + [p for sec in extra for p in sec.plots]),
        "sections": extra,
        "resource_note": res_note,
        "noise_rule": NOISE_RULE,
        "friction_rule": FRICTION_RULE,
        "representative_rule": REPRESENTATIVE_RULE,
        "slo_rule": SLO_RULE.format(
            levels=", ".join(f"{x:g}" for x in STANDARD_SLOS_MS),
            err=fmt_pct(MAX_ERROR_FRACTION_FOR_SLO),
        ),
    }


def build_report(
    run_dir: str | Path, compare: str | Path | None = None, force: bool = False
) -> ReportPaths:
    """Write ``run_dir/report/report.{html,md}``.

    Raises ReportError (missing dir, refused comparison: CompareRefused), StoreError (missing /
    malformed meta.json, bad middle line), FormatVersionError (older results format)."""
    run = load_run(run_dir)
    other = None
    compare_warnings: list[str] = []
    if compare is not None:
        other = load_run(compare)
        compare_warnings = check_comparable(run, other, force)
        if other.truncated_steps:
            compare_warnings.append(
                f"{other.dir}/steps.jsonl ends with a truncated line; only its complete steps are compared"
            )
    ctx = _context(run, other, compare_warnings)
    out = run.dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    html, md = out / "report.html", out / "report.md"
    html.write_text(render_html(ctx), encoding="utf-8")
    md.write_text(render_md(ctx), encoding="utf-8")
    return ReportPaths(html, md)


def build_report_cli(run_dir: Path, compare: str | None, force: bool) -> int:
    try:
        paths = build_report(run_dir, compare=compare, force=force)
    except CompareRefused as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except (ReportError, StoreError, FormatVersionError, ExperimentError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {paths.html}")
    print(f"wrote {paths.markdown}")
    return 0
