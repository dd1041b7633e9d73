"""Estimate the between-run component tau of the stable-verdict rule from recorded pairs of runs.

    .venv/bin/python scripts/between_run.py tests/data/verdict_reproduction*.json
    .venv/bin/python scripts/between_run.py --runs runs/RUN1 runs/RUN2 [--runs ...]

Each input is two runs of one commit on one machine: a verdict fixture
(``scripts/record_verdict_fixture.py``) or two run directories. Prints tau (log-ratio standard
deviation, shown as a percentage) with its bootstrap interval, pooled and per metric family, how
many verdicts moved more than 2 within-run standard errors, and per pair, with tau estimated
WITHOUT that pair (leave one out): the stable verdicts under tau = 0 and under that tau, the
disagreements left, and how many rerun estimates land inside the stated and the rerun interval.
The method: ``servecmp/report/between_run.py``; the stored value: ``stats.BETWEEN_RUN``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from servecmp.report.between_run import (
    Estimate,
    Term,
    by_family,
    estimate,
    families_differ,
    fixture_pair,
    run_dirs_pair,
    terms,
)
from servecmp.report.reproduce import disagreements, landings, verdict_of
from servecmp.report.stats import BETWEEN_RUN

Records = list[dict[str, Any]]


def _est(e: Estimate) -> str:
    return (
        f"tau = {e.tau:.2%} ({e.confidence:.0%} interval {e.low:.2%}-{e.high:.2%}; "
        f"{e.comparisons} verdicts, {e.pairs} pairs)"
    )


def _stable(recs: Records, tau: float) -> int:
    """Load-step verdicts called stable (friction verdicts allow for no tau)."""
    steps = [r for r in recs if "friction" not in r]
    return sum(1 for r in steps if (v := verdict_of(r, tau)) is not None and v.stable)


def report(pairs: dict[str, tuple[Records, Records]]) -> list[str]:
    found = {name: terms(a, b, name) for name, (a, b) in pairs.items()}
    every: list[Term] = [t for ts in found.values() for t in ts]
    lines = [f"pooled: {_est(estimate(every))}"]
    for family, ts in sorted(by_family(every).items()):
        lines.append(f"  {family:<10} {_est(estimate(ts))}")
    stat, df, p = families_differ(every)
    lines.append(
        f"a tau per family against one pooled: likelihood ratio {stat:.2f} on {df} df, p = {p:.2f}"
        + (" (pool)" if p >= 0.05 else " (the families differ: consider a tau per family)")
    )
    big = [t for t in every if abs(t.z) > 2]
    lines.append(
        f"verdicts that moved > 2 within-run standard errors: {len(big)}/{len(every)} "
        f"(about {0.05 * len(every):.1f} expected with tau = 0)"
        + "".join(f"\n  {t.pair} {t.key}: z = {t.z:+.2f}" for t in big)
    )
    if len(pairs) < 2:
        return lines
    stored = BETWEEN_RUN.tau
    lines.append("leave one out (tau from the other pairs):")
    for name, (a, b) in pairs.items():
        rest = [t for n, ts in found.items() if n != name for t in ts]
        tau = estimate(rest).tau
        wrong = disagreements(a, b, tau) + disagreements(b, a, tau)
        n, in_ci, in_rerun = (
            x + y for x, y in zip(landings(a, b, tau), landings(b, a, tau), strict=True)
        )
        lines.append(
            f"  {name}: tau {tau:.2%}; stable load verdicts (run 1 + run 2) tau=0: "
            f"{_stable(a, 0.0)} + {_stable(b, 0.0)}, this tau: {_stable(a, tau)} + "
            f"{_stable(b, tau)}, stored tau: {_stable(a, stored)} + {_stable(b, stored)}; rerun "
            f"estimates inside the stated interval {in_ci}/{n}, "
            f"inside the rerun interval {in_rerun}/{n}; disagreements: "
            + ("; ".join(sorted(set(wrong))) if wrong else "none")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixtures", nargs="*", type=Path, help="verdict fixtures (two runs each)")
    ap.add_argument(
        "--runs",
        nargs=2,
        action="append",
        type=Path,
        default=[],
        metavar=("RUN1", "RUN2"),
        help="two run directories of one commit (repeatable)",
    )
    args = ap.parse_args(argv)
    if not args.fixtures and not args.runs:
        ap.error("give at least one verdict fixture or --runs RUN1 RUN2")
    pairs: dict[str, tuple[Records, Records]] = {}
    try:
        for path in args.fixtures:
            pairs[path.name] = fixture_pair(path)
        for r1, r2 in args.runs:
            pairs[f"{r1.name}+{r2.name}"] = run_dirs_pair(r1, r2)
        print("\n".join(report(pairs)))
    except (OSError, ValueError) as err:
        print(f"between_run: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
