"""The tune report (``<tune_dir>/report/tune.md`` + ``tune.html``), built from the stored
measurements only: per server the "defaults vs best" section (throughput under the SLO and p99,
best / defaults as a ratio with its 95 % interval over the interleaved re-measurements), the
Pareto plot and every measured configuration."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servecmp.report.stats import paired_verdict
from servecmp.results.metrics import METRICS
from servecmp.tune.pareto import front, pareto_plot, points
from servecmp.tune.store import Measurement, TuneStore


@dataclass(frozen=True)
class Ratio:
    metric: str
    defaults: float
    best: float
    ratio: float  # best / defaults (geometric mean over rounds)
    interval: tuple[float, float] | None  # of the ratio, 95 %; None: fewer than 2 paired rounds
    n_pairs: int
    significant: bool

    def text(self, unit: str) -> str:
        iv = (
            f" [{self.interval[0]:.2f}, {self.interval[1]:.2f}]"
            if self.interval
            else " (no interval: < 2 rounds)"
        )
        sig = "" if self.significant else ", within noise"
        return (
            f"{self.defaults:.1f} → {self.best:.1f} {unit}: x{self.ratio:.2f}{iv}, "
            f"{self.n_pairs} paired round(s){sig}"
        )


@dataclass(frozen=True)
class RerunInterval:
    """Where one rerun of the tuned configuration through ``servecmp run`` is expected to land."""

    mean: float
    low: float
    high: float
    n: int  # confirmation rounds it rests on
    text: str


def defaults_outcome(row: dict[str, Any]) -> str:
    """What a summary row whose best is the defaults says: won a re-measurement, or was the only
    configuration measured (the server's share of the budget ran out before any other)."""
    if row.get("best_confirmed_rps") is None:
        single = row.get("best_screen_rps")
        return (
            "only the defaults were measured (its share of the budget ran out); not re-measured"
            + (f", {single:.1f} req/s (single measurement)" if single is not None else "")
        )
    return f"the defaults won the re-measurement ({row['best_confirmed_rps']:.1f} req/s mean)"


def rerun_interval(per_round_rps: list[float], level: float = 0.95) -> RerunInterval | None:
    """A Student-t prediction interval for one new measurement from the confirmation rounds'
    throughput (mean ± t · s · √(1 + 1/n)): wider than the mean's confidence interval, because a
    rerun is one draw, with its own start-up and machine load. None below 2 rounds."""
    from scipy import stats

    xs = [float(x) for x in per_round_rps]
    n = len(xs)
    if n < 2:
        return None
    mean = sum(xs) / n
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd * (1 + 1 / n) ** 0.5
    return RerunInterval(
        mean,
        max(0.0, mean - half),
        mean + half,
        n,
        f"{level:.0%} prediction interval from {n} burned-in confirmation rounds, mean "
        f"{mean:.1f} req/s; an indication on a machine whose load varies",
    )


def _p99_at(m: Measurement, param: str | None) -> float | None:
    for lv in m.levels:
        if lv.param == param:
            return lv.p99_ms
    return None


def _score_param(m: Measurement) -> str | None:
    ok = [lv for lv in m.levels if lv.slo_ok]
    return max(ok, key=lambda lv: lv.throughput_rps).param if ok else None


def defaults_vs_best(
    confirm: list[Measurement], defaults_id: str, best_id: str
) -> dict[str, Ratio] | None:
    """Paired over confirmation rounds: throughput under the SLO, and p99 at the load level where
    the best configuration reached it (the same level for both)."""
    d = {m.round: m for m in confirm if m.config_id == defaults_id}
    b = {m.round: m for m in confirm if m.config_id == best_id}
    rounds = sorted(set(d) & set(b))
    if not rounds:
        return None
    out: dict[str, Ratio] = {}
    tp = [(d[r].score_rps, b[r].score_rps) for r in rounds]
    p99: list[tuple[float, float]] = []
    for r in rounds:
        param = _score_param(b[r])
        x, y = _p99_at(d[r], param), _p99_at(b[r], param)
        if x and y:
            p99.append((x, y))
    for metric, pairs in (("throughput_rps", tp), ("latency_p99_ms", p99)):
        good = [(x, y) for x, y in pairs if x > 0 and y > 0]
        if not good:
            continue
        a = sum(x for x, _ in good) / len(good)
        bb = sum(y for _, y in good) / len(good)
        if len(good) >= 2:
            v = paired_verdict(METRICS[metric], good, a, bb)
            assert v.change is not None and v.interval is not None
            out[metric] = Ratio(
                metric,
                a,
                bb,
                1 + v.change,
                (1 + v.interval[0], 1 + v.interval[1]),
                len(good),
                v.significant,
            )
        else:
            x, y = good[0]
            out[metric] = Ratio(metric, x, y, y / x, None, 1, False)
    return out


def _breakdown_lines(ms: list[Measurement], summary: dict[str, Any]) -> list[str]:
    from servecmp.tune.breakdown import lines, tuned_breakdown

    found = [
        tuned_breakdown(ms, s["server"], s["best_id"], s["best_label"])
        for s in summary["servers"]
        if s.get("best_id") and not s.get("unavailable")
    ]
    return lines([t for t in found if t is not None])


def build(tune_dir: Path, summary: dict[str, Any], slo_ms: float) -> tuple[Path, Path]:
    ms, _ = TuneStore(tune_dir).read()
    out = tune_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    md: list[str] = [
        f"# servecmp tune: {summary['experiment']}",
        "",
        f"Tune run `{tune_dir.name}`; strategy {summary['strategy']}; budget "
        f"{summary['budget_minutes']:g} min; measured {summary['measured_s']:.0f} s; "
        f"wall {summary['wall_s']:.0f} s. Objective: highest throughput whose p99 ≤ "
        f"{slo_ms:g} ms with ≤ 0.1 % errors; ties (≤ 3 %) go to less CPU, then less memory.",
        "",
    ]
    md.append("## Defaults vs best")
    md.append("")
    md.append(
        "| server | defaults | best | throughput under SLO (best / defaults, 95 % interval) | p99 at that load (best / defaults) | search |"
    )
    md.append("|---|---|---|---|---|---|")
    for s in summary["servers"]:
        if s.get("unavailable"):
            md.append(f"| {s['server']} | — | — | unavailable: {s['unavailable']} | — | — |")
            continue
        r = s.get("ratios") or {}
        tp = r.get("throughput_rps")
        p99 = r.get("latency_p99_ms")
        tp_t = (
            Ratio(**tp).text("req/s")
            if tp
            else (defaults_outcome(s) if s.get("defaults_won") else "no paired re-measurement")
        )
        p_t = Ratio(**p99).text("ms") if p99 else "—"
        md.append(
            f"| {s['server']} | {s['defaults_label']} | {s['best_label']} | {tp_t} | {p_t} | {s['stopped']} |"
        )
    md.append("")
    md.append("### Rerun interval")
    md.append("")
    for s in summary["servers"]:
        ri = s.get("rerun_interval")
        if s.get("unavailable"):
            continue
        md.append(
            f"- **{s['server']}** ({s['best_label']}): "
            + (
                f"a rerun of the tuned file through `servecmp run` is expected at {ri['low']:.1f} to {ri['high']:.1f} "
                f"req/s at the confirmation's load level ({ri['text']})"
                if ri
                else "no rerun interval (fewer than 2 confirmation rounds of the winner)"
            )
        )
        for note in s.get("held") or []:
            md.append(f"  - {note}")
    md.append("")
    md.append(
        "Ratios come from the confirmation rounds only (defaults and the top candidates re-measured "
        "in interleaved, counterbalanced rounds (A B, B A) at one load level, each server burned in "
        "with a short warm load before it is measured), over the rounds where both met "
        "the SLO; the interval is a Student-t interval over the paired log-ratios (as the run "
        "report's verdicts). The winner is the best mean over all rounds, a round that missed the "
        "SLO counting 0."
    )
    md.append("")
    md += _breakdown_lines(ms, summary)
    md.append("## Pareto front (throughput vs p99)")
    md.append("")
    pts = points(ms)
    for server in sorted({p.server for p in pts}):
        md.append(
            f"- **{server}**: "
            + "; ".join(
                f"{p.throughput_rps:.1f} req/s at p99 {p.p99_ms:.1f} ms ({p.label}, {p.param})"
                for p in front([p for p in pts if p.server == server])
            )
        )
    md.append("")
    md.append("## Every measurement")
    md.append("")
    md.append(
        "| server | stage | round | configuration | score (req/s) | p99 (ms) | levels | duration (s) | note |"
    )
    md.append("|---|---|---|---|---|---|---|---|---|")
    for m in ms:
        lv = "; ".join(
            f"{x.param}: {x.throughput_rps:.1f}/s p99 {x.p99_ms if x.p99_ms is None else round(x.p99_ms, 1)}"
            f"{'' if x.steady else ' (unsteady)'}{'' if x.valid else ' (INVALID)'}"
            for x in m.levels
        )
        p99 = "—" if m.score_p99_ms is None else f"{m.score_p99_ms:.1f}"
        md.append(
            f"| {m.server} | {m.stage} | {m.round} | {m.label} | {m.score_rps:.1f} | {p99} | {lv} | "
            f"{m.duration_s:.0f} | {m.early_stop or m.unavailable or ''} |"
        )
    md.append("")
    md.append("## Provenance")
    md.append("")
    md.append("```json")
    md.append(
        json.dumps({k: v for k, v in summary.items() if k != "servers"}, indent=2, sort_keys=True)
    )
    md.append("```")
    md_path = out / "tune.md"
    md_path.write_text("\n".join(md) + "\n")
    plot = pareto_plot(ms, slo_ms)
    fig_html = (
        plot.figure.to_html(full_html=False, include_plotlyjs=True, div_id=plot.id)
        if plot.figure is not None
        else f"<p>{html.escape(plot.note)}</p>"
    )
    body = "\n".join(md)
    html_path = out / "tune.html"
    html_path.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>servecmp tune: "
        f"{html.escape(summary['experiment'])}</title></head><body>"
        f"<h2>{html.escape(plot.title)}</h2>{fig_html}<p>{html.escape(plot.note)}</p>"
        f"<pre>{html.escape(body)}</pre></body></html>\n"
    )
    return md_path, html_path
