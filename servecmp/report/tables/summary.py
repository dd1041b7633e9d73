"""The answer first: per protocol, each server's headline numbers and a verdict per pair; then
the friction headline numbers (per server, any protocol). Summary cells use short server names
and at most three significant figures; a server without data gets one note line, not a column."""

from __future__ import annotations

from servecmp.report.cells import (
    Cell,
    Param,
    TargetInfo,
    cells,
    main_target,
    param_label,
    params,
    protocols,
    targets,
)
from servecmp.report.data import RunData
from servecmp.report.format import (
    FRICTION_LABEL,
    friction_brief,
    friction_unit,
    sig3,
    verdict_brief,
)
from servecmp.report.notes import note_ref
from servecmp.report.servers import server_label, server_pairs, servers, short_label
from servecmp.report.slo import best_under_slo, summary_slo
from servecmp.report.stats import compare_friction, difference
from servecmp.report.table import Table
from servecmp.report.tables.friction import FrictionSeries, friction_series
from servecmp.results.friction import FRICTION_METRICS

SUMMARY_FRICTION = ("cold_start_ready_s", "idle_rss_bytes", "recovery_s", "config_knobs_changed")
PROTOCOL_NAME = {"rest": "REST", "grpc": "gRPC"}


def _pair_header(a: str, b: str) -> str:
    return f"{short_label(a)} vs {short_label(b)}"


def _present(run: RunData, proto: str) -> tuple[list[tuple[str, TargetInfo]], dict[str, str]]:
    """Servers with an available main target for ``proto``, and why each other server has none."""
    infos = targets(run)
    present: list[tuple[str, TargetInfo]] = []
    missing: dict[str, str] = {}
    for srv in servers(run):
        m = main_target(infos, srv, proto)
        if m is None:
            missing[srv] = "no target in this run"
        elif m.unavailable:
            missing[srv] = f"unavailable: {m.unavailable}"
        else:
            present.append((srv, m))
    return present, missing


def summary_missing(run: RunData) -> list[str]:
    """One line per server and reason for a server left out of summary tables: which protocols
    (or friction) and why, e.g. "TF Serving (REST, gRPC): unavailable: <reason>"."""
    why: dict[str, dict[str, list[str]]] = {}  # server -> reason -> what
    for proto in protocols(run):
        for srv, reason in _present(run, proto)[1].items():
            why.setdefault(srv, {}).setdefault(reason, []).append(PROTOCOL_NAME.get(proto, proto))
    for srv, reason in _friction_servers(run)[1].items():
        why.setdefault(srv, {}).setdefault(reason, []).append("friction")
    lines = []
    for srv in servers(run):
        for reason, what in why.get(srv, {}).items():
            lines.append(f"{short_label(srv)} ({', '.join(what)}): {reason}")
    return lines


def summary_tables(run: RunData) -> list[tuple[str, Table]]:
    """Per protocol: each server's headline numbers (a column each) and a verdict for every pair
    of servers (a column each: "A vs B"), one line per question."""
    infos = targets(run)
    cs = cells(run)
    ps = params(run)
    slo = summary_slo(run)
    out: list[tuple[str, Table]] = []
    for proto in protocols(run):
        present, _ = _present(run, proto)
        if not present:
            continue
        names = [srv for srv, _ in present]
        pairs = server_pairs(names)
        idx = {x: i for i, x in enumerate(names)}
        t = Table(
            [
                "question",
                "unit",
                *(server_label(x) for x in names),
                *(_pair_header(a, b) for a, b in pairs),
            ],
            [],
            caption=f"{proto.upper()}: " + " vs ".join(m.name for _, m in present),
        )
        blank = ["", ""] + [""] * len(names)

        def side(m: TargetInfo, p: Param) -> tuple[Cell | None, str]:
            c = cs.get((m.name, p))
            if c is None:
                return None, "not measured"
            if c.rep is None:
                return None, c.invalid_reason or "not comparable"
            return c, ""

        def verdicts(
            metric: str,
            got: list[tuple[Cell | None, str]],
            pairs: list[tuple[str, str]] = pairs,
            idx: dict[str, int] = idx,
        ) -> tuple[list[str], list[str]]:
            texts, classes = [], []
            for a, b in pairs:
                ca, cb = got[idx[a]][0], got[idx[b]][0]
                vt, vc = verdict_brief(
                    difference(metric, ca, cb) if ca and cb else None,
                    short_label(a),
                    short_label(b),
                )
                texts.append(vt)
                classes.append(vc)
            return texts, classes

        best = [best_under_slo(run, cs, infos, srv, proto, slo) for srv in names]
        texts = [
            f"{sig3(c.value('throughput_rps'))} ({param_label(c.param)})" if c else why
            for c, why in best
        ]
        vts, vcs = verdicts("throughput_rps", best)
        t.add([f"Best throughput with p99 ≤ {slo:g} ms", "req/s", *texts, *vts], [*blank, *vcs])
        if ps:  # latency at the lowest load
            low = ps[0]
            sides = [side(m, low) for _, m in present]
            for metric, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")):
                texts = [sig3(c.value(metric)) if c else why for c, why in sides]
                vts, vcs = verdicts(metric, sides)
                t.add(
                    [
                        f"{label} latency at the lowest load ({param_label(low)})",
                        "ms",
                        *texts,
                        *vts,
                    ],
                    [*blank, *vcs],
                )
        out.append((proto, t))
    return out


def _friction_servers(run: RunData) -> tuple[list[str], dict[str, str]]:
    """Servers with at least one summary friction measurement, and why each other has none."""
    have: list[str] = []
    missing: dict[str, str] = {}
    found = {m: friction_series(run, m) for m in SUMMARY_FRICTION}
    if not any(found.values()):
        return [], {}  # no friction recorded at all: the friction section says so
    for srv in servers(run):
        series = [s for f in found.values() if (s := f.get(srv)) is not None]
        if any(s.values for s in series):
            have.append(srv)
        else:
            reasons = [s.last.reason for s in series if not s.last.available]
            missing[srv] = (
                f"unavailable: {reasons[0] or 'no reason recorded'}" if reasons else "not measured"
            )
    return have, missing


def _friction_value(d_unit: str, s: FrictionSeries | None, run: RunData) -> str:
    if s is None:
        return "not measured"
    if s.median is None:
        return note_ref(run, s.last.reason) if not s.last.available else "—"
    v = s.median / 2**20 if d_unit == "bytes" else s.median
    return sig3(v) if len(s.values) == 1 else f"{sig3(v)} (median of {len(s.values)})"


def summary_friction(run: RunData) -> Table | None:
    """Friction headline numbers (any protocol): a column per server, a verdict per pair by the
    friction rule (:func:`~servecmp.report.stats.compare_friction`); None: nothing measured."""
    names, _ = _friction_servers(run)
    if not names:
        return None
    pairs = server_pairs(names)
    t = Table(
        [
            "question",
            "unit",
            *(server_label(x) for x in names),
            *(_pair_header(a, b) for a, b in pairs),
        ],
        [],
    )
    blank = ["", ""] + [""] * len(names)
    for metric in SUMMARY_FRICTION:
        d = FRICTION_METRICS[metric]
        found = friction_series(run, metric)
        if not any(x in found for x in names):
            continue
        texts = [_friction_value(d.unit, found.get(x), run) for x in names]
        pv = []
        for a, b in pairs:
            sa, sb = found.get(a), found.get(b)
            v = compare_friction(d, sa.values, sb.values) if sa and sb else None
            pv.append(friction_brief(v, d.better.value, short_label(a), short_label(b)))
        t.add(
            [FRICTION_LABEL[metric], friction_unit(metric), *texts, *(x for x, _ in pv)],
            [*blank, *(c for _, c in pv)],
        )
    return t
