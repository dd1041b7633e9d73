"""The rules the report writes into itself, so that every verdict can be checked by its reader."""

from __future__ import annotations

from servecmp.report.format import NOT_SIGNIFICANT, STABLE, UNSTABLE, pct3
from servecmp.report.stats import (
    BETWEEN_RUN,
    CONFIDENCE,
    MIN_FRICTION_ROUNDS,
    MIN_REL_DIFF,
    ONE_OFF_ERROR,
    RERUN_NOISE_CONFIDENCE,
)

NOISE_RULE = (
    "Only comparable steps count: valid (the measurement checked itself), steady (its windows "
    "agree) and undisturbed (the server's processes did not change during the step). "
    "With interleaved repeats (load.repeats ≥ 2: round 1 runs A, B, C …, round 2 again A, B, C …, "
    "so slow drift of the machine hits every target alike), two targets are compared over the "
    "rounds where both have a comparable step: for each round r the log-ratio d_r = ln(b_r / a_r) "
    f"is taken; the difference is exp(mean d) - 1 with its {CONFIDENCE:.0%} Student-t confidence "
    "interval over the rounds (scipy.stats.ttest_1samp), transformed back the same way; the noise "
    "is the standard deviation of the d_r and “resolves ≥ x” is the interval's half-width: the "
    "smallest difference that run could have called. A winner is named only when that interval excludes 0 "
    f"and the difference exceeds {MIN_REL_DIFF:.0%}; otherwise the pair is labelled "
    f"“{NOT_SIGNIFICANT}”. A cell's number is the median over its comparable repeats. "
    "With a single step per target (no repeats) the fallback rule applies: a and b differ only "
    "when |a - b| / ((a + b) / 2) is "
    f"greater than max({MIN_REL_DIFF:.0%}, noise(a), noise(b)), where noise(x) is the largest of "
    "the spread (max - min) / mean over repeated steps and over the step's reported windows of "
    "the window statistic that tracks the metric (window throughput for throughput; window p50 "
    "for p50 and mean; window p99 for p90 … max); that threshold is what such a pair resolves. "
    "Every verdict in the summary states its resolving power as “resolves ≥ x”: the paired "
    "interval's half-width, or the single-step threshold. A paired winner is marked "
    f"“{STABLE}” only when a second run of the same commit would name it again: the rerun's "
    "estimate may move from this one by this run's within-run uncertainty plus a between-run "
    "component τ (machine state that shifts a pair's ratio from one run to the next, which no "
    "run's own rounds show), so it lands in the rerun interval exp(mean d ± √(h² + 2 (t τ)²)) - 1, "
    "h the paired interval's half-width on the log scale and t its Student-t quantile; the rerun "
    "names the winner again when its own interval, centred anywhere in that rerun interval, "
    "still excludes 0, and that interval may be wider than this one by the noise estimate's "
    f"{RERUN_NOISE_CONFIDENCE:.0%} upper confidence bound, √((n - 1) / χ²(n - 1) at "
    f"{1 - RERUN_NOISE_CONFIDENCE:.0%}) for n rounds. So: “{STABLE}” when the rerun interval's "
    f"near edge clears 0 by more than that widened half-width and by more than {MIN_REL_DIFF:.0%}; "
    f"otherwise “{UNSTABLE}”. Where a verdict is explained, “a rerun lands in [x, y]” states the "
    f"rerun interval. This machine's {BETWEEN_RUN.statement()}; it applies to load steps' "
    "metrics (friction verdicts allow for none: not measured). Friction measurements follow the "
    "friction rule below."
)
FRICTION_RULE = (
    "Friction (cold start, memory, recovery …): counted quantities (files, lines, settings, metric "
    "families) are compared exactly. A measured quantity (seconds, bytes, cores, requests) measured "
    f"at least {MIN_FRICTION_ROUNDS} times per server, interleaved (round k of every server in "
    "turn), is compared like interleaved steps: paired by round, the log-ratio's "
    f"{CONFIDENCE:.0%} Student-t interval, a winner only when it excludes 0 and the difference "
    f"exceeds {MIN_REL_DIFF:.0%}. Measured fewer times, the medians are trusted only to within a "
    f"measurement error of {pct3(ONE_OFF_ERROR)} (cold start, memory and recovery of one run move by "
    "tens of percent between runs on a shared machine): a winner is named only when "
    f"|a - b| / ((a + b) / 2) exceeds {pct3(ONE_OFF_ERROR)}; otherwise the cell says “one measurement: "
    "no verdict”. A value shown for several measurements is their median."
)
REPRESENTATIVE_RULE = (
    "A cell's number is the median over its comparable repeats (valid, steady, undisturbed); "
    "distributions and histograms show the last comparable repeat; every step is listed under "
    "“All steps”. Steps that are not comparable never appear as a server number: their cells say "
    "why (invalid / not steady / disrupted) and the status row gives the reason."
)
