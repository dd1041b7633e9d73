"""Two runs side by side: refused when their fairness settings differ (unless forced)."""

from __future__ import annotations

from typing import Any

from servecmp.report.cells import cells, param_label, targets
from servecmp.report.data import ReportError, RunData, fairness_of
from servecmp.report.format import METRIC_LABEL, fmt, fmt_pct, verdict_outcome
from servecmp.report.stats import compare_cells
from servecmp.report.table import Table
from servecmp.report.tables.head_to_head import HEAD_METRICS
from servecmp.results.metrics import METRICS


class CompareRefused(ReportError):
    """The two runs were not measured under the same fairness settings."""


def fairness_differences(a: RunData, b: RunData) -> list[tuple[str, Any, Any]]:
    """``[(setting, value in a, value in b)]``; raises CompareRefused when one run has none."""
    fa, src_a = fairness_of(a)
    fb, src_b = fairness_of(b)
    if fa is None or fb is None:
        missing = src_a if fa is None else src_b
        raise CompareRefused(f"cannot check that the runs are comparable: {missing}")
    diffs = []
    for key in list(dict.fromkeys([*fa, *fb])):
        va, vb = fa.get(key, "<not recorded>"), fb.get(key, "<not recorded>")
        if va != vb:
            diffs.append((key, va, vb))
    return diffs


def describe_differences(a: RunData, b: RunData, diffs: list[tuple[str, Any, Any]]) -> str:
    lines = [f"  - {k}: {va!r} in {a.dir} vs {vb!r} in {b.dir}" for k, va, vb in diffs]
    return "\n".join(lines)


def check_comparable(a: RunData, b: RunData, force: bool) -> list[str]:
    """Warnings for the report (forced comparison); raises CompareRefused when not forced."""
    try:
        diffs = fairness_differences(a, b)
    except CompareRefused as err:
        if not force:
            raise CompareRefused(f"{err}\nre-run with --force to compare anyway") from None
        return [f"comparison forced: {err}"]
    if not diffs:
        return []
    text = describe_differences(a, b, diffs)
    if not force:
        raise CompareRefused(
            f"refusing to compare {a.dir} with {b.dir}: their fairness settings differ:\n{text}\n"
            "re-run with --force to compare anyway (the report will flag every difference)"
        )
    return [f"comparison forced although the fairness settings differ:\n{text}"]


def delta_table(a: RunData, b: RunData) -> Table:
    """Per target x load x metric: this run (a) vs the other run (b), with the noise verdict."""
    ca, cb = cells(a), cells(b)
    t = Table(
        [
            "target",
            "load",
            "metric",
            "unit",
            f"this run ({a.run_id})",
            f"other run ({b.run_id})",
            "Δ (other - this)",
            "verdict",
        ],
        [],
    )
    names = [n.name for n in targets(a)] + [
        n.name for n in targets(b) if n.name not in a.target_names()
    ]
    ua = {n.name: n.unavailable for n in targets(a)}
    ub = {n.name: n.unavailable for n in targets(b)}
    keys = sorted(
        {k for k in [*ca, *cb]}, key=lambda k: (names.index(k[0]) if k[0] in names else 99, k[1])
    )
    for key in keys:
        name, p = key
        x, y = ca.get(key), cb.get(key)
        for metric in HEAD_METRICS:
            m = METRICS[metric]

            def side(c: Any, unavail: str | None, metric: str = metric, m: Any = m) -> str:
                if unavail:
                    return f"unavailable: {unavail}"
                if c is None:
                    return "not measured"
                if c.rep is None:
                    return c.invalid_reason or "not comparable"
                return fmt(c.value(metric), m.unit)

            sa, sb = side(x, ua.get(name)), side(y, ub.get(name))
            row = [name, param_label(p), METRIC_LABEL[metric], m.unit, sa, sb]
            if (
                x is None
                or y is None
                or x.rep is None
                or y.rep is None
                or ua.get(name)
                or ub.get(name)
            ):
                t.add([*row, "—", "no data"], ["", "", "", "", "", "", "", "na"])
                continue
            v = compare_cells(metric, x, y)
            assert v is not None
            delta = v.b - v.a
            rel = delta / v.a if v.a else 0.0
            dtxt = f"{fmt(delta, m.unit)} ({'+' if rel >= 0 else '-'}{fmt_pct(abs(rel))})"
            verdict, cls = verdict_outcome(v, "this run", "other run")
            if not v.significant:
                verdict += f" (threshold {fmt_pct(v.threshold)})"
            t.add([*row, dtxt, verdict], ["", "", "", "", "", "", "", cls])
    measured = {k[0] for k in keys}
    for name in names:  # unavailable targets without any step: one row, never dropped
        if name in measured or not (ua.get(name) or ub.get(name)):
            continue
        sa = (
            f"unavailable: {ua[name]}"
            if ua.get(name)
            else ("available" if name in ua else "not in this run")
        )
        sb = (
            f"unavailable: {ub[name]}"
            if ub.get(name)
            else ("available" if name in ub else "not in this run")
        )
        t.add(
            [name, "—", "all", "", sa, sb, "—", "no data"],
            [
                "",
                "",
                "",
                "",
                "unavail" if ua.get(name) else "",
                "unavail" if ub.get(name) else "",
                "",
                "na",
            ],
        )
    return t
