"""Which demo design resolves what, in how long: run named designs and print, per design, the wall
time and each same-protocol pair's noise and resolving power (and, run twice, whether the
verdicts reproduce).

    .venv/bin/python scripts/bench_demo.py                       # quick + previous, quick twice
    .venv/bin/python scripts/bench_demo.py --design quick --design quick-r6-w0.5 --rerun quick-r6-w0.5
    .venv/bin/python scripts/bench_demo.py --predict tests/data/verdict_reproduction.json --rounds 5
    .venv/bin/python scripts/bench_demo.py --design tiny=loadtests/experiments/quick.yaml \
        --set tiny:load.repeats=2 --set tiny:load.concurrency=[1]

A design is an experiment file made as ``servecmp run --quick`` makes it (``quick_profile``),
then overrides (``--set NAME:dotted.key=YAML value``). Each run is ``servecmp run`` on that file
in a child process, bounded by ``--timeout-min``; the wall time is the child's, after the model
export (done once before the first timing, as an installed checkout has it after its first run).
Resolving power: the half-width of the 95 % interval of the paired ratio that the report states
per pair (docs/method.md, "Design of the demo"); noise: the standard deviation of the paired
log-ratios over the rounds. On a shared machine these figures say nothing: run it on an idle one.
Default designs: quick, quick twice and previous — three runs, about 15 min.
``--predict`` runs nothing: from recorded runs (a run directory or a verdict fixture) it prints
each pair's round-to-round noise, the resolving power that noise gives with N rounds, and the
smallest difference N rounds would call stable: that one allows for the machine's between-run
component (``stats.BETWEEN_RUN``, or ``--between-run``), which more rounds do not shrink.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "loadtests" / "experiments"

# name -> (experiment file, overrides applied after the --quick profile)
DESIGNS: dict[str, tuple[Path, dict[str, Any]]] = {
    # the demo as quick.yaml has it: 4 rounds of 1 s x 2 windows, same-protocol pairs side by
    # side (ABBA over rounds), the in-process baselines in round 1 only
    "quick": (EXPERIMENTS / "quick.yaml", {}),
    # the design measured on 2026-12-07 (4 min 56 s; pairs resolved 8.1-29.2 %): 4 rounds of
    # 1 s x 2 windows, baselines in every round
    "previous": (
        EXPERIMENTS / "quick.yaml",
        {"load.repeats": 4, "load.baseline_rounds": "every", "load.stability.window_s": 1.0},
    ),
    # more, shorter rounds: 6 rounds of 0.5 s x 2 windows (p99 at c=1 then rests on ~60 answers)
    "quick-r6-w0.5": (
        EXPERIMENTS / "quick.yaml",
        {"load.repeats": 6, "load.stability.window_s": 0.5},
    ),
    # measured 2026-12-07 20:09-20:31 (docs/figures.md): 5 rounds, baselines once, windows of
    # 0.75 s x 2 (5 min 26 s / 5 min 5 s; pairs 9.1-84.5 %) and of 1 s x 2 (5 min 13 s / 5 min 8 s;
    # 7.1-33.5 %): neither resolved better than 4 rounds, both over 5 minutes
    "quick-r5-w0.75": (
        EXPERIMENTS / "quick.yaml",
        {"load.repeats": 5, "load.stability.window_s": 0.75},
    ),
    "quick-r5-w1": (EXPERIMENTS / "quick.yaml", {"load.repeats": 5}),
    # burn-in off, and a longer one (3 s windows, up to 30 s): does TorchServe's first round
    # still lag (scripts/burnin_effect.py on the runs)? On the 2026-12-07 runs that lag was most
    # of the REST pairs' round-to-round noise.
    "quick-no-burn-in": (EXPERIMENTS / "quick.yaml", {"load.burn_in.max_s": 0}),
    "quick-long-burn-in": (
        EXPERIMENTS / "quick.yaml",
        {"load.burn_in.max_s": 30, "load.burn_in.window_s": 3.0},
    ),
    # a burn-in of at least 15 s per server (3 windows of 5 s): TorchServe was still speeding
    # up a minute into the 2026-12-07 runs (c=4 REST 56-57 req/s at the end of its 3-4 s
    # burn-ins, 64-72 req/s in later rounds)
    "quick-burn-in-15s": (
        EXPERIMENTS / "quick.yaml",
        {"load.burn_in.max_s": 30, "load.burn_in.window_s": 5.0},
    ),
    # close to the demo before: the native-encoding extras too, 3 rounds of 1.5 s windows (the
    # round order and the baseline rule are today's)
    "encodings-3": (
        EXPERIMENTS / "encodings.yaml",
        {"load.repeats": 3, "load.stability.window_s": 1.5},
    ),
}
DEFAULT_DESIGNS = ("quick", "previous")
# `servecmp run FILE` for a file already made as --quick makes it, with what --quick also does
# besides (no baseline whose servers are all unavailable): --quick itself would cap the overrides
CHILD = """
import sys
from pathlib import Path
from servecmp.experiment import load_experiment
from servecmp.log import setup as setup_logging
from servecmp.run.orchestrate import run_experiment
setup_logging()
path = Path(sys.argv[1])
run_experiment(load_experiment(path), experiment_path=path, runs_root=Path(sys.argv[2]),
               skip_unpaired_baselines=True)
"""
DEFAULT_RERUN = ("quick",)


@dataclass
class Outcome:
    design: str
    wall_s: float
    run_dir: Path | None
    records: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            raise SystemExit(f"--set {key}: {p!r} is not a section of the experiment")
        node = nxt
    node[parts[-1]] = value


def resolved_experiment(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The experiment the design runs: the file under the --quick profile, then the overrides,
    validated as any experiment file is."""
    from servecmp.experiment import load_experiment, parse_experiment
    from servecmp.run.orchestrate import quick_profile

    data = copy.deepcopy(quick_profile(load_experiment(path)).model_dump(mode="json"))
    for key, value in overrides.items():
        set_dotted(data, key, value)
    return parse_experiment(data, f"{path.name} with {overrides}").model_dump(mode="json")


def run_design(name: str, exp: dict[str, Any], root: Path, timeout_s: float) -> Outcome:
    from servecmp.report.data import load_run
    from servecmp.report.reproduce import summary_inputs

    runs = root / name
    runs.mkdir(parents=True, exist_ok=True)
    before = set(runs.iterdir())
    exp_file = root / f"{name}.yaml"
    exp_file.write_text(yaml.safe_dump(exp, sort_keys=False))
    cmd = [sys.executable, "-c", CHILD, str(exp_file), str(runs)]
    print(f"[{name}] servecmp run {exp_file} (as --quick runs it) into {runs}", flush=True)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, timeout=timeout_s, stdout=subprocess.DEVNULL)
        error = "" if proc.returncode == 0 else f"servecmp run exited {proc.returncode}"
    except subprocess.TimeoutExpired:
        error = f"stopped after {timeout_s:.0f} s"
    wall = time.monotonic() - t0
    new = sorted(set(runs.iterdir()) - before)
    run_dir = new[-1] if new else None
    out = Outcome(name, wall, run_dir, error=error)
    if run_dir is not None and (run_dir / "steps.jsonl").exists():
        out.records = summary_inputs(load_run(run_dir))
    return out


def pair_lines(o: Outcome) -> list[str]:
    from servecmp.report.reproduce import verdict_of

    lines = []
    for rec in o.records:
        if "friction" in rec:
            continue
        v = verdict_of(rec)
        if v is None:
            continue
        noise = f"{v.noise:.1%}" if v.noise is not None else "—"
        called = (v.better or "—") if v.significant else "ns"
        lines.append(
            f"  {rec['key']:<42} pairs {v.n_pairs}  noise {noise:>6}  resolves "
            f"{(v.resolution or v.threshold):6.1%}  {called}{' stable' if v.stable else ''}"
        )
    return lines


def worst_resolution(o: Outcome) -> float | None:
    from servecmp.report.reproduce import verdict_of

    vals = [
        v.resolution or v.threshold
        for rec in o.records
        if "friction" not in rec and (v := verdict_of(rec)) is not None
    ]
    return max(vals) if vals else None


def agreement(a: Outcome, b: Outcome) -> str:
    from servecmp.report.reproduce import disagreements, verdict_of

    def called(rec: dict[str, Any]) -> str:
        v = verdict_of(rec)
        return "—" if v is None else (v.better or "—") if v.significant else "ns"

    first = {r["key"]: called(r) for r in a.records}
    second = {r["key"]: called(r) for r in b.records}
    common = sorted(set(first) & set(second))
    same = sum(first[k] == second[k] for k in common)
    found = disagreements(a.records, b.records)
    text = (
        f"verdicts equal in both runs: {same}/{len(common)}; "
        f"rerun estimates inside the first run's interval: {inside(a, b)}; "
        "disagreements under the stable rule: "
    )
    return text + ("; ".join(found) if found else "none")


def inside(a: Outcome, b: Outcome) -> str:
    """How many paired estimates of run ``b`` lie inside run ``a``'s interval, and inside its
    rerun interval (the interval widened by the between-run component): the premise of the
    stable-verdict rule (stats.reproducible)."""
    from servecmp.report.reproduce import landings

    n, in_ci, in_rerun = landings(a.records, b.records)
    return f"{in_ci}/{n} (rerun interval: {in_rerun}/{n})"


def round_factor(n: int) -> float:
    """t(n-1) / sqrt(n): the 95 % half-width of a mean of n paired log-ratios per unit of sd."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) / math.sqrt(n)


def recorded_runs(path: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """(run id, verdict records) from a run directory or a verdict fixture
    (scripts/record_verdict_fixture.py writes one)."""
    if path.is_dir():
        from servecmp.report.data import load_run
        from servecmp.report.reproduce import summary_inputs

        run = load_run(path)
        return [(run.run_id, summary_inputs(run))]
    try:
        data = json.loads(path.read_text())
        return [(r["run"], r["verdicts"]) for r in data["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(
            f"--predict {path}: expected a run directory or a verdict fixture "
            f'({{"runs": [{{"run": ..., "verdicts": [...]}}]}}): {err}'
        ) from err


def log_ratios(rec: dict[str, Any]) -> list[float]:
    """The pair's ln(b/a) per round, in round order."""
    rounds = sorted(rec.get("rounds", {}).items(), key=lambda kv: int(kv[0]))
    return [math.log(b / a) for _, (a, b) in rounds if a > 0 and b > 0]


def stable_floor(sd: float, n: int, tau: float) -> float:
    """The smallest difference (b above a) that ``n`` rounds at noise ``sd`` call stable
    (stats.reproducible): the rerun interval's near edge, m - sqrt(h^2 + (t sqrt(2) tau)^2),
    must clear the rerun's half-width h x rerun_width_factor(n) and 5 %. Unlike the resolving
    power h, it stays above t sqrt(2) tau however many rounds."""
    from scipy import stats

    from servecmp.report.stats import MIN_REL_DIFF, rerun_width_factor

    half = sd * round_factor(n)
    t = float(stats.t.ppf(0.975, n - 1))
    rerun = math.hypot(half, t * math.sqrt(2) * tau)
    return math.expm1(rerun + max(half * rerun_width_factor(n), math.log1p(MIN_REL_DIFF)))


def _resolves(sd: float, n: int, tau: float) -> str:
    half = sd * round_factor(n)
    return (
        f"{sd:.1%} x {round_factor(n):.3f} = {half:.1%} (resolves >= "
        f"{max(0.05, math.expm1(half)):.1%}, stable >= {stable_floor(sd, n, tau):.1%})"
    )


def predicted_lines(
    runs: list[tuple[str, list[dict[str, Any]]]], n: int, tau: float | None = None
) -> list[str]:
    """Per recorded run and pair, and pooled over the runs (root mean square of the sds): the
    round-to-round noise of the paired log-ratio, the resolving power it gives with ``n``
    rounds of steps like the recorded ones, and the smallest difference called stable with the
    between-run component ``tau`` (None: stats.BETWEEN_RUN); also without the first round, whose
    drift (a server still warming up) a longer burn-in would remove if that is its cause."""
    from servecmp.report.stats import BETWEEN_RUN

    tau = BETWEEN_RUN.tau if tau is None else tau
    lines: list[str] = [f"between-run component tau = {tau:.2%} (log-ratio sd)"]
    pooled: dict[str, list[tuple[float, float | None]]] = {}
    for run_id, recs in runs:
        lines.append(f"{run_id}:")
        for rec in recs:
            d = log_ratios(rec) if "friction" not in rec else []
            if len(d) < 3:
                continue
            sd, later = statistics.stdev(d), statistics.stdev(d[1:]) if len(d) > 3 else None
            pooled.setdefault(rec["key"], []).append((sd, later))
            text = f"  {rec['key']:<42} {len(d)} rounds -> {n}: {_resolves(sd, n, tau)}"
            if later is not None:
                text += f"; without round 1: {_resolves(later, n, tau)}"
            lines.append(text)
    if len(runs) > 1:
        lines.append(f"pooled over {len(runs)} runs:")
        for key, sds in pooled.items():
            sd = math.sqrt(statistics.fmean(x * x for x, _ in sds))
            text = f"  {key:<42} {n} rounds: {_resolves(sd, n, tau)}"
            laters = [y for _, y in sds if y is not None]
            if laters:
                later = math.sqrt(statistics.fmean(y * y for y in laters))
                text += f"; without round 1: {_resolves(later, n, tau)}"
            lines.append(text)
    return lines


def minutes_seconds(seconds: float) -> str:
    """296.4 -> "4 min 56 s" (whole minutes, never rounded up)."""
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--design",
        action="append",
        help=f"a design name ({', '.join(DESIGNS)}) or NAME=EXPERIMENT.yaml (repeatable)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="override a dotted experiment key of design NAME (YAML value)",
    )
    ap.add_argument("--rerun", action="append", help="run this design a second time (repeatable)")
    ap.add_argument(
        "--predict",
        type=Path,
        metavar="RUN_OR_FIXTURE",
        help="run nothing: print each pair's noise in these recorded runs and what it resolves "
        "with --rounds rounds",
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds for --predict (at least 2)")
    ap.add_argument(
        "--between-run",
        type=float,
        metavar="TAU",
        help="between-run component for --predict, a log-ratio sd such as 0.03 (default: "
        "stats.BETWEEN_RUN; scripts/between_run.py estimates it from recorded pairs)",
    )
    ap.add_argument("--timeout-min", type=float, default=12.0, help="bound on each run")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-demo")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.predict is not None:
        if args.rounds < 2:
            raise SystemExit(f"--rounds {args.rounds}: a paired interval needs at least 2 rounds")
        tau = args.between_run
        if tau is not None and not (math.isfinite(tau) and 0 <= tau < 1):
            raise SystemExit(f"--between-run {tau}: expected a log-ratio sd in [0, 1), e.g. 0.03")
        print("\n".join(predicted_lines(recorded_runs(args.predict), args.rounds, tau)))
        return 0
    designs: dict[str, tuple[Path, dict[str, Any]]] = {}
    for item in args.design or DEFAULT_DESIGNS:
        name, _, file = item.partition("=")
        if file:
            designs[name] = (Path(file), {})
        elif name in DESIGNS:
            designs[name] = (DESIGNS[name][0], dict(DESIGNS[name][1]))
        else:
            raise SystemExit(f"--design {name!r}: not one of {', '.join(DESIGNS)} (or NAME=FILE)")
    for item in args.set:
        name, sep, rest = item.partition(":")
        key, eq, value = rest.partition("=")
        if not sep or not eq or name not in designs:
            raise SystemExit(f"--set {item!r}: expected NAME:KEY=VALUE with NAME among --design")
        designs[name][1][key] = yaml.safe_load(value)
    reruns = args.rerun if args.rerun is not None else [d for d in DEFAULT_RERUN if d in designs]
    unknown = [r for r in reruns if r not in designs]
    if unknown:
        raise SystemExit(f"--rerun {unknown}: not among the designs {list(designs)}")
    resolved = {name: resolved_experiment(path, ov) for name, (path, ov) in designs.items()}

    from servecmp.run.orchestrate import ensure_artifacts

    for exp in resolved.values():  # the export is install-time work: done before any clock
        ensure_artifacts(
            exp["model"], ROOT / "build" / "models" / f"seed-{exp['seed']}", exp["seed"]
        )
    root = args.out / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    plan = [(n, 0) for n in resolved] + [(n, 1) for n in reruns]
    outcomes: dict[tuple[str, int], Outcome] = {}
    for name, k in plan:
        label = name if k == 0 else f"{name}-rerun"
        outcomes[(name, k)] = run_design(label, resolved[name], root, args.timeout_min * 60)

    print(f"\nbench_demo: {len(plan)} run(s) under {root}")
    for (name, k), o in outcomes.items():
        worst = worst_resolution(o)
        head = f"{name}{' (rerun)' if k else ''}: wall {minutes_seconds(o.wall_s)}"
        head += f", worst pair resolves {worst:.1%}" if worst is not None else ", no pair resolved"
        print(head + (f"  [{o.error}]" if o.error else "") + f"  ({o.run_dir})")
        print("\n".join(pair_lines(o)) or "  (no same-protocol pair)")
    for name in reruns:
        print(f"{name}: {agreement(outcomes[(name, 0)], outcomes[(name, 1)])}")
    walls = [o.wall_s for o in outcomes.values()]
    if len(walls) > 1:
        print(f"wall time over all runs: median {statistics.median(walls):.0f} s")
    return 0 if all(not o.error for o in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
