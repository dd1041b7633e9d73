"""Do two runs of one commit call the same verdicts? The summary's verdicts as small records.

:func:`summary_inputs` takes from a run exactly what the summary's verdicts are computed from
(the cells ``tables/summary.py`` picks, their per-round values, the friction measurements per
start-up), as JSON-ready records; :func:`verdict_of` turns a record into the summary's verdict;
:func:`disagreements` says where two runs' verdicts disagree under the stable-verdict rule
(``stats.reproducible``). ``scripts/record_verdict_fixture.py`` stores two runs' records in
``tests/data/`` so the suite checks the rule on recorded data.
"""

from __future__ import annotations

from typing import Any

from servecmp.report.cells import Cell, cells, param_label, params, protocols, targets
from servecmp.report.data import RunData
from servecmp.report.servers import server_pairs, servers
from servecmp.report.slo import best_under_slo, summary_slo
from servecmp.report.stats import Verdict, compare_friction, compare_values, noise, paired_verdict
from servecmp.report.tables.friction import friction_series
from servecmp.report.tables.summary import SUMMARY_FRICTION, _present
from servecmp.results.friction import FRICTION_METRICS
from servecmp.results.metrics import METRICS

QUESTIONS = ("best_throughput", "latency_p50_ms", "latency_p99_ms")


def _step_record(key: str, metric: str, ca: Cell, cb: Cell) -> dict[str, Any] | None:
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    ra, rb = ca.by_repeat(metric), cb.by_repeat(metric)
    rounds = sorted(set(ra) & set(rb))
    return {
        "key": key,
        "metric": metric,
        "values": [va, vb],
        "rounds": {str(r): [ra[r], rb[r]] for r in rounds if ra[r] > 0 and rb[r] > 0},
        "noise": [noise(ca, metric), noise(cb, metric)],
        "levels": [param_label(ca.param), param_label(cb.param)],
    }


def summary_inputs(run: RunData) -> list[dict[str, Any]]:
    """One record per summary verdict: per protocol and pair of servers, best throughput under
    the SLO and p50 / p99 at the lowest load; per pair of servers, the summary friction."""
    infos, cs, ps, slo = targets(run), cells(run), params(run), summary_slo(run)
    out: list[dict[str, Any]] = []
    for proto in protocols(run):
        present, _ = _present(run, proto)
        mains = dict(present)
        best = {srv: best_under_slo(run, cs, infos, srv, proto, slo)[0] for srv in mains}
        for a, b in server_pairs(list(mains)):
            picks: dict[str, tuple[Cell | None, Cell | None]] = {
                "best_throughput": (best[a], best[b])
            }
            if ps:
                low = ps[0]
                for metric in QUESTIONS[1:]:
                    picks[metric] = (cs.get((mains[a].name, low)), cs.get((mains[b].name, low)))
            for question, (ca, cb) in picks.items():
                if ca is None or cb is None or ca.rep is None or cb.rep is None:
                    continue
                metric = "throughput_rps" if question == "best_throughput" else question
                rec = _step_record(f"{proto}/{question}/{a}~{b}", metric, ca, cb)
                if rec is not None:
                    out.append(rec)
    for metric in SUMMARY_FRICTION:
        found = friction_series(run, metric)
        names = [s for s in servers(run) if s in found and found[s].values]
        for a, b in server_pairs(names):
            out.append(
                {
                    "key": f"friction/{metric}/{a}~{b}",
                    "metric": metric,
                    "friction": [
                        {str(k): v for k, v in found[a].values.items()},
                        {str(k): v for k, v in found[b].values.items()},
                    ],
                }
            )
    return out


def verdict_of(rec: dict[str, Any], between_run: float | None = None) -> Verdict | None:
    """The summary's verdict for one record (the rules of ``stats``); ``between_run``: the tau
    the stable rule allows for (None: the machine's, ``stats.BETWEEN_RUN``)."""
    if "friction" in rec:
        fa, fb = ({int(k): float(v) for k, v in side.items()} for side in rec["friction"])
        return compare_friction(FRICTION_METRICS[rec["metric"]], fa, fb)
    metric = METRICS[rec["metric"]]
    va, vb = rec["values"]
    pairs = [(float(x), float(y)) for x, y in rec["rounds"].values()]
    if len(pairs) >= 2:
        return paired_verdict(metric, pairs, va, vb, between_run)
    return compare_values(metric, va, vb, *rec["noise"])


def _called(v: Verdict | None) -> str:
    return "no data" if v is None else (v.better or "none") if v.significant else "not significant"


def disagreements(
    first: list[dict[str, Any]], second: list[dict[str, Any]], between_run: float | None = None
) -> list[str]:
    """Where two runs' verdicts disagree: opposite winners, or a verdict the stable rule calls
    stable that the other run does not call. A verdict marked "may not reproduce" against
    "not significant" is no disagreement: the rule said it might not reproduce."""
    other = {r["key"]: verdict_of(r, between_run) for r in second}
    out = []
    for rec in first:
        if rec["key"] not in other:
            continue
        v1, v2 = verdict_of(rec, between_run), other[rec["key"]]
        if v1 is None or v2 is None:
            continue
        opposite = v1.significant and v2.significant and v1.better != v2.better
        lost = any(x.stable and _called(x) != _called(y) for x, y in ((v1, v2), (v2, v1)))
        if opposite or lost:
            out.append(
                f"{rec['key']}: {_called(v1)}{' (stable)' if v1.stable else ''} vs "
                f"{_called(v2)}{' (stable)' if v2.stable else ''}"
            )
    return out


def landings(
    first: list[dict[str, Any]], second: list[dict[str, Any]], between_run: float | None = None
) -> tuple[int, int, int]:
    """(load-step verdicts compared, second-run estimates inside the first run's interval,
    inside its rerun interval): what "a rerun lands inside the interval stated" holds to."""
    ref = {r["key"]: verdict_of(r, between_run) for r in first if "friction" not in r}
    n = in_ci = in_rerun = 0
    for rec in second:
        v1, v2 = ref.get(rec["key"]), verdict_of(rec, between_run)
        if v1 is None or v2 is None or v1.interval is None or v1.rerun is None:
            continue
        if v2.change is None:
            continue
        n += 1
        in_ci += v1.interval[0] <= v2.change <= v1.interval[1]
        in_rerun += v1.rerun[0] <= v2.change <= v1.rerun[1]
    return n, in_ci, in_rerun
