"""Does burn-in change a server's first round? Compare round 1 with the later rounds of stored runs.

    .venv/bin/python scripts/burnin_effect.py RUN [RUN ...] [--server torchserve]

For every server target and load level of each run: round 1's throughput and p50 as a ratio to
the median of the later rounds (1.00: round 1 is like the others; below 1 for throughput, above
1 for p50: the first round is slower, i.e. the server was still warming up). Each run says
whether it burned its servers in (``meta.json`` ``burn_in``) and how long that took, so runs with
burn-in can be set beside runs without (``scripts/bench_demo.py --set NAME:load.burn_in={max_s: 0}``
makes those). Ratios of one run move with the machine's drift: compare several runs of each kind.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from servecmp.report.data import RunData, load_run


def first_round_ratios(run: RunData, server: str | None) -> list[tuple[str, int, float, float]]:
    """(target, concurrency, round-1 throughput ÷ later median, round-1 p50 ÷ later median)."""
    by: dict[tuple[str, int], dict[int, tuple[float, float]]] = {}
    for s in run.steps:
        if s.protocol == "inprocess" or (server and s.server != server):
            continue
        if not s.comparable or s.latency_ms.p50 is None or s.concurrency is None:
            continue
        by.setdefault((s.target, s.concurrency), {})[s.repeat] = (
            s.throughput_rps,
            s.latency_ms.p50,
        )
    out = []
    for (target, c), rounds in sorted(by.items()):
        later = [v for r, v in rounds.items() if r > 0]
        if 0 not in rounds or not later:
            continue
        thr = rounds[0][0] / statistics.median(v[0] for v in later)
        p50 = rounds[0][1] / statistics.median(v[1] for v in later)
        out.append((target, c, thr, p50))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--server", help="only this server's targets (e.g. torchserve)")
    args = ap.parse_args(argv)
    for path in args.runs:
        run = load_run(path)
        burn = run.meta.burn_in
        how = (
            "burn-in " + ", ".join(f"{b.server} {b.duration_s:.0f} s" for b in burn)
            if burn
            else "no burn-in"
        )
        rounds = len({s.repeat for s in run.steps})
        print(f"{run.run_id} ({how}, {rounds} rounds)")
        rows = first_round_ratios(run, args.server)
        if not rows:
            print("  no target with a first and a later comparable round")
        for target, c, thr, p50 in rows:
            print(f"  {target:<28} c={c:<3} round 1 / later: throughput {thr:.2f}, p50 {p50:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
