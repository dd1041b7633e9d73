"""make bench-tune: `servecmp tune` against the exhaustive grid over the same spaces (prints both).

1. The grid: every configuration of every server's space measured once
   (`servecmp tune EXPERIMENT --strategy grid`), stored compactly in GRID_DIR (measurements.jsonl,
   summary.json, tune.json; the default is committed: docs/bench/tune-grid-quick/). Reused when
   present: it is run once.
2. The search: `servecmp tune EXPERIMENT --budget-minutes N` (writes loadtests/experiments/tuned-<name>.yaml).
3. Per server: the grid's best throughput under the SLO, the search's winner (its confirmed mean
   and the grid's own figure for the same configuration), and whether the winner is within 5 %
   of the grid's best; the wall time against the budget; defaults as a fraction of tuned.

Figures from a shared machine vary: the load average at start and end is printed with them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from servecmp.tune import run_tune
from servecmp.tune.store import TuneStore

WITHIN = 0.05


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--experiment", default="loadtests/experiments/quick.yaml")
    p.add_argument("--budget-minutes", type=float, default=15.0)
    p.add_argument("--grid-dir", type=Path, default=Path("docs/bench/tune-grid-quick"))
    p.add_argument("--grid-budget-minutes", type=float, default=60.0)
    p.add_argument("--runs", type=Path, default=Path("runs/bench-tune"))
    p.add_argument("--server", action="append", help="default: every server of the experiment")
    a = p.parse_args(argv)

    if not (a.grid_dir / "measurements.jsonl").is_file():
        print(f"== grid (once): every configuration, stored in {a.grid_dir}", flush=True)
        gd = run_tune(
            a.experiment,
            budget_minutes=a.grid_budget_minutes,
            servers=a.server,
            strategy="grid",
            runs_root=a.runs,
        )
        a.grid_dir.mkdir(parents=True, exist_ok=True)
        for name in ("measurements.jsonl", "summary.json", "tune.json"):
            shutil.copy2(gd / name, a.grid_dir / name)
    grid_ms, _ = TuneStore(a.grid_dir).read()
    grid_summary = json.loads((a.grid_dir / "summary.json").read_text())

    print(
        f"== search: servecmp tune {a.experiment} --budget-minutes {a.budget_minutes:g}", flush=True
    )
    out = Path("loadtests") / "experiments" / f"tuned-{Path(a.experiment).stem}.yaml"
    td = run_tune(
        a.experiment, budget_minutes=a.budget_minutes, servers=a.server, runs_root=a.runs, out=out
    )
    summary = json.loads((td / "summary.json").read_text())

    print()
    print(
        f"search: wall {summary['wall_s'] / 60:.1f} min of a {a.budget_minutes:g} min budget "
        f"({'within' if summary['wall_s'] <= a.budget_minutes * 60 else 'OVER'} budget); load average "
        f"{summary['loadavg_at_start'][0]:.1f} at start, {summary['loadavg_at_end'][0]:.1f} at end"
    )
    print(
        f"grid:   {grid_summary['measured_s'] / 60:.1f} min measured ({grid_summary.get('tune_dir', '')}); "
        f"load average {grid_summary['loadavg_at_start'][0]:.1f} at start, {grid_summary['loadavg_at_end'][0]:.1f} at end"
    )
    print(
        f"{'server':<11} {'grid best req/s':>16} {'search winner (confirmed)':>26} {'grid at winner':>15} "
        f"{'winner/grid best':>17}  defaults/tuned"
    )
    ok = True
    for s in summary["servers"]:
        name = s["server"]
        if s.get("unavailable"):
            print(f"{name:<11} unavailable: {s['unavailable']}")
            continue
        mine = [m for m in grid_ms if m.server == name]
        if not mine:
            print(f"{name:<11} not in the stored grid")
            continue
        gbest = max(mine, key=lambda m: m.score_rps)
        win_id = None
        if s.get("best"):
            from servecmp.tune.space import candidate

            win_id = candidate(name, s["best"]).id
        at_win = next((m.score_rps for m in mine if m.config_id == win_id), None)
        conf = s.get("best_confirmed_rps") or s.get("best_screen_rps") or 0.0
        # the winner's own grid figure (same conditions as the grid's best) decides; the confirmed
        # mean, measured later under other load, is printed beside it
        ref = at_win if at_win is not None else conf
        frac = ref / gbest.score_rps if gbest.score_rps else float("nan")
        hit = frac >= 1 - WITHIN
        ok &= hit
        tp = (s.get("ratios") or {}).get("throughput_rps")
        dfrac = (
            (
                f"{1 / tp['ratio']:.2f}"
                + (
                    f" [{1 / tp['interval'][1]:.2f}, {1 / tp['interval'][0]:.2f}]"
                    if tp.get("interval")
                    else ""
                )
            )
            if tp
            else "—"
        )
        if s.get("defaults_won"):
            dfrac = "1 (the defaults won the re-measurement)"
        print(
            f"{name:<11} {gbest.score_rps:>16.1f} {conf:>26.1f} {at_win if at_win is not None else float('nan'):>15.1f} "
            f"{frac:>16.0%} {'ok' if hit else 'MISS'}  {dfrac}"
        )
        print(f"{'':<11} grid best: {gbest.label}; search winner: {s['best_label']}")
    print(
        f"\nwinner within {WITHIN:.0%} of the grid's best for every server: {'yes' if ok else 'no'}"
    )
    print(f"tuned experiment: {out}; tune report: {td / 'report' / 'tune.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
