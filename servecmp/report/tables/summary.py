"""The answer first: per protocol, each server's headline numbers and a verdict per pair."""

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
from servecmp.report.format import FRICTION_LABEL, describe, fmt, friction_unit, verdict_outcome
from servecmp.report.notes import note_ref
from servecmp.report.servers import server_label, server_pairs, servers
from servecmp.report.slo import best_under_slo, summary_slo
from servecmp.report.stats import Verdict, difference
from servecmp.report.table import Table
from servecmp.report.tables.friction import friction_value
from servecmp.results.friction import FRICTION_METRICS, FrictionMetric, FrictionRecord
from servecmp.results.metrics import Better

SUMMARY_FRICTION = ("cold_start_ready_s", "idle_rss_bytes", "recovery_s", "config_knobs_changed")


def _verdict_text(v: Verdict | None, a_label: str, b_label: str) -> tuple[str, str]:
    word, cls = verdict_outcome(v, a_label, b_label)
    if v is None:
        return word, cls
    if not v.significant:
        return f"{word}: {describe(v)}", cls
    return f"{word}: {b_label} vs {a_label} {describe(v)}", cls


def _friction_pair(d: FrictionMetric, a: FrictionRecord | None, b: FrictionRecord | None, la: str, lb: str) -> tuple[str, str]:
    if a is None or b is None or not a.available or not b.available or a.value is None or b.value is None:
        return "no data", "na"
    if a.value == b.value:
        return "tie", "ns"
    if d.better is Better.neither:
        return "(no direction)", "ns"
    better_a = a.value < b.value if d.better is Better.lower else a.value > b.value
    return f"{la if better_a else lb} better (1 measurement each)", "win"


def summary_tables(run: RunData) -> list[tuple[str, Table]]:
    """Per protocol: each server's headline numbers (a column each) and a verdict for every pair
    of servers (a column each: "A vs B"), one line per question."""
    infos = targets(run)
    cs = cells(run)
    ps = params(run)
    slo = summary_slo(run)
    names = servers(run)
    pairs = server_pairs(names)
    labels = [server_label(x) for x in names]
    idx = {x: i for i, x in enumerate(names)}
    out: list[tuple[str, Table]] = []
    for proto in protocols(run):
        mains = [main_target(infos, srv, proto) for srv in names]
        if all(m is None for m in mains):
            continue
        t = Table(["question", "unit", *labels, *(f"{server_label(a)} vs {server_label(b)}" for a, b in pairs)], [],
                  caption=f"{proto.upper()}: " + " vs ".join(m.name if m else f"no {server_label(srv)} target"
                                                               for m, srv in zip(mains, names, strict=True)))
        blank = ["", ""] + [""] * len(names)

        def side(m: TargetInfo | None, p: Param | None = None) -> tuple[Cell | None, str]:
            if m is None:
                return None, "no target"
            if m.unavailable:
                return None, note_ref(run, m.unavailable)
            if p is None:
                return None, ""
            c = cs.get((m.name, p))
            if c is None:
                return None, "not measured"
            if c.rep is None:
                return None, c.invalid_reason or "not comparable"
            return c, ""

        def verdicts(metric: str, got: list[tuple[Cell | None, str]]) -> tuple[list[str], list[str]]:
            texts, classes = [], []
            for a, b in pairs:
                ca, cb = got[idx[a]][0], got[idx[b]][0]
                vt, vc = _verdict_text(difference(metric, ca, cb) if ca and cb else None,
                                       server_label(a), server_label(b))
                texts.append(vt)
                classes.append(vc)
            return texts, classes

        # best throughput under the SLO
        best: list[tuple[Cell | None, str]] = []
        for srv, m in zip(names, mains, strict=True):
            _, why = side(m)
            if why:
                best.append((None, why))
                continue
            c, why = best_under_slo(run, cs, infos, srv, proto, slo)
            best.append((c, why))
        texts = [f"{fmt(c.value('throughput_rps'), 'req/s')} ({param_label(c.param)})" if c else why for c, why in best]
        vts, vcs = verdicts("throughput_rps", best)
        t.add([f"Best throughput with p99 ≤ {slo:g} ms", "req/s", *texts, *vts], [*blank, *vcs])
        # latency at the lowest load
        if ps:
            low = ps[0]
            sides = [side(m, low) for m in mains]
            for metric, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")):
                texts = [fmt(c.value(metric), "ms") if c else why for c, why in sides]
                vts, vcs = verdicts(metric, sides)
                t.add([f"{label} latency at the lowest load ({param_label(low)})", "ms", *texts, *vts], [*blank, *vcs])
        # one-off friction measurements
        for metric in SUMMARY_FRICTION:
            d = FRICTION_METRICS[metric]
            recs = [_last_friction(run, srv, metric) for srv in names]
            texts = [friction_value(r, run) if r is not None else "not measured" for r in recs]
            pv = [_friction_pair(d, recs[idx[a]], recs[idx[b]], server_label(a), server_label(b)) for a, b in pairs]
            t.add([FRICTION_LABEL[metric], friction_unit(metric), *texts, *(x for x, _ in pv)], [*blank, *(c for _, c in pv)])
        out.append((proto, t))
    return out


def _last_friction(run: RunData, server: str, metric: str) -> FrictionRecord | None:
    found = None
    for r in run.friction:
        if r.server == server and r.metric == metric and r.placement == "local":
            found = r
    return found
