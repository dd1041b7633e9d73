"""How numbers and names look in the report: value formatting per unit and display labels."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from servecmp.results.friction import FRICTION_METRICS

if TYPE_CHECKING:
    from servecmp.report.stats import Verdict

NOT_SIGNIFICANT = "not significant"
STABLE = "stable"
UNSTABLE = "may not reproduce"

# decimals per unit: the Markdown shows round(value, DECIMALS[unit])
DECIMALS: dict[str, int] = {"req/s": 2, "ms": 3, "fraction": 4, "count": 0, "cores": 3}


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    d = DECIMALS.get(unit, 3)
    if d == 0:
        return str(round(value))
    return f"{value:.{d}f}"


def fmt_pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    return f"{b / 2**20:.1f} MiB"


def signed_pct(x: float) -> str:
    return f"{'+' if x >= 0 else '-'}{abs(x) * 100:.1f} %"


def describe(v: Verdict) -> str:
    """The difference with its interval (paired) or threshold (fallback rule)."""
    if v.interval is not None and v.change is not None:
        lo, hi = v.interval
        return (
            f"{signed_pct(v.change)} [{signed_pct(lo)}, {signed_pct(hi)}] "
            f"({v.n_pairs} paired repeats, noise {fmt_pct(v.noise or 0.0)}, "
            f"resolves ≥ {fmt_pct(v.resolution or v.threshold)}{_rerun_text(v)})"
        )
    return f"{fmt_pct(v.rel_diff)} (threshold {fmt_pct(v.threshold)}; 1 repeat, window noise)"


def _rerun_text(v: Verdict) -> str:
    """Where a rerun's estimate may land (stats.rerun_interval), when it differs from the
    interval: the within-run interval widened by the between-run component."""
    if v.rerun is None or v.between_run <= 0:
        return ""
    lo, hi = v.rerun
    return f"; a rerun lands in [{signed_pct(lo)}, {signed_pct(hi)}] (between-run τ)"


def sig3(x: float | None) -> str:
    """At most three significant figures; from 100 up an integer with thousands separators
    (1,274), below it e.g. 82.4, 3.3, 0.0123."""
    if x is None or math.isnan(x):
        return "—"
    if abs(x) >= 100:
        return f"{round(x):,}"
    return f"{x:.3g}"


def pct3(x: float, signed: bool = False) -> str:
    """A fraction as a percentage with at most three significant figures: +14.8 %, 166 %."""
    v = abs(x) * 100
    num = f"{round(v):,}" if v >= 99.95 else f"{v:.1f}"
    sign = ("+" if x >= 0 else "-") if signed else ("-" if x < 0 else "")
    return f"{sign}{num} %"


def verdict_outcome(v: Verdict | None, a_label: str, b_label: str) -> tuple[str, str]:
    """The verdict in words and its CSS class: ("no data", "na"), (NOT_SIGNIFICANT, "ns") or
    ("<winner> better", "win")."""
    if v is None:
        return "no data", "na"
    if not v.significant:
        return NOT_SIGNIFICANT, "ns"
    return f"{a_label if v.better == 'a' else b_label} better", "win"


METRIC_LABEL = {
    "throughput_rps": "throughput",
    "achieved_rps": "achieved (any outcome)",
    "offered_rps": "offered rate",
    "latency_p50_ms": "p50",
    "latency_p90_ms": "p90",
    "latency_p95_ms": "p95",
    "latency_p99_ms": "p99",
    "latency_p999_ms": "p99.9",
    "latency_max_ms": "max",
    "latency_mean_ms": "mean",
    "error_fraction": "error fraction",
    "wrong_answers": "wrong answers",
    "transport_errors": "transport errors (all kinds)",
    "late_send_fraction": "late sends (fraction)",
    "generator_cpu": "generator CPU",
}


FRICTION_LABEL: dict[str, str] = {
    "packaging_steps": "Packaging commands",
    "packaging_s": "Packaging time",
    "artifact_bytes": "Model artifact size",
    "image_bytes": "Container image size",
    "cold_start_ready_s": "Cold start to ready",
    "cold_start_first_inference_s": "Cold start to first correct answer",
    "install_ready_s": "Helm install to pod Ready",
    "idle_rss_bytes": "Idle memory (RSS)",
    "peak_rss_bytes": "Peak memory under load (RSS)",
    "idle_cpu_cores": "Idle CPU",
    "config_files": "Configuration files written",
    "config_lines": "Configuration lines",
    "config_knobs_changed": "Settings changed from defaults",
    "metric_families": "Native Prometheus metric families",
    "server_latency_quantiles": "Server-side latency histogram",
    "update_failed_requests": "Failed requests during a model update",
    "update_s": "Model update to first v2 answer",
    "recovery_s": "Recovery after a kill under load",
    "recovery_lost_requests": "Requests lost while down",
    "bad_payload_clear_errors": "Bad payloads answered with a clear 4xx",
    "oversize_crashed": "Crashed on a body over its size limit",
}


def friction_unit(metric: str) -> str:
    unit = FRICTION_METRICS[metric].unit
    return "MiB" if unit == "bytes" else unit


def verdict_brief(v: Verdict | None, a_label: str, b_label: str) -> tuple[str, str]:
    """A summary cell: the verdict, b vs a with at most three significant figures, and what the
    rule could resolve (the interval's half-width, or the single-repeat threshold)."""
    word, cls = verdict_outcome(v, a_label, b_label)
    if v is None:
        return word, cls
    if v.interval is not None and v.change is not None:
        lo, hi = v.interval
        diff = f"{b_label} vs {a_label} {pct3(v.change, True)} [{pct3(lo, True)}, {pct3(hi, True)}]"
    else:
        diff = f"{b_label} vs {a_label} differ by {pct3(v.rel_diff)} (1 repeat)"
    text = f"{word}: {diff}, resolves ≥ {pct3(v.resolution or v.threshold)}"
    if v.significant and v.paired:  # whether a rerun would call it too (stats.reproducible)
        text += f"; {STABLE if v.stable else UNSTABLE}"
    return text, cls


def measurements_word(v: Verdict) -> str:
    n = min(v.n_a, v.n_b)
    return "one measurement" if n == 1 else f"{n} measurements"


def friction_brief(v: Verdict | None, better: str, a_label: str, b_label: str) -> tuple[str, str]:
    """A friction verdict cell (``better``: the metric's direction, "neither" has none)."""
    if v is None:
        return "no data", "na"
    if better == "neither":
        return "(no direction)", "ns"
    if v.rule == "paired":
        return verdict_brief(v, a_label, b_label)
    winner = a_label if v.better == "a" else b_label
    if v.rule == "exact":
        return (f"{winner} better (exact count)", "win") if v.significant else ("tie", "ns")
    if not v.significant:
        return (
            f"{measurements_word(v)}: no verdict (differ by {pct3(v.rel_diff)} ≤ {pct3(v.threshold)} error)",
            "ns",
        )
    return (
        f"{winner} better: differ by {pct3(v.rel_diff)} > {pct3(v.threshold)} error ({measurements_word(v)})",
        "win",
    )
