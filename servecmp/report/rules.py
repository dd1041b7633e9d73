"""The rules the report writes into itself, so that every verdict can be checked by its reader."""

from __future__ import annotations

from servecmp.report.format import NOT_SIGNIFICANT
from servecmp.report.stats import CONFIDENCE, MIN_REL_DIFF

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
    "for p50 and mean; window p99 for p90 … max). One-off friction measurements (cold start, "
    "memory, recovery) have no repeats: their winner is marked “1 measurement each”."
)
REPRESENTATIVE_RULE = (
    "A cell's number is the median over its comparable repeats (valid, steady, undisturbed); "
    "distributions and histograms show the last comparable repeat; every step is listed under "
    "“All steps”. Steps that are not comparable never appear as a server number: their cells say "
    "why (invalid / not steady / disrupted) and the status row gives the reason."
)
