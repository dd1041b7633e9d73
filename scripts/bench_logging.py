"""What TorchServe's default logging costs (not a test): its own log4j2.xml vs the ``quiet`` one
(``tuning.logging``), measured with the project's step engine exactly as ``servecmp run`` does.

    .venv/bin/python scripts/bench_logging.py [--artifacts build/models/seed-1234]
        [--rounds 4] [--concurrency 1 4]

One server at a time on the server CPU (the generator on another when two are usable), started
afresh for each of its turns; rounds alternate the order (A B, B A) and the figure is the paired
ratio quiet / default per concurrency (geometric mean over rounds, with its range). The log bytes each server wrote during its steps show what the knob removed. Numbers
from a shared machine are indicative only.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from servecmp.experiment import Target, load_experiment

LEVELS = ("default", "quiet")


def _log_bytes(run_dir: Path) -> int:
    return sum(f.stat().st_size for f in run_dir.rglob("*.log") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    from servecmp.load.engine.runner import run_step
    from servecmp.load.engine.spec import make_spec
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import artifacts, export_model, read_records
    from servecmp.models.registry import get_model
    from servecmp.run.standalone import start_server

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="loadtests/experiments/quick.yaml")
    ap.add_argument(
        "--artifacts", default="build/models/seed-1234", help="export root holding <model>/"
    )
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--step-s", type=float, default=4.0, help="window length of each measured step")
    ap.add_argument(
        "--quiet-first", action="store_true", help="start (and measure first) the quiet server"
    )
    args = ap.parse_args(argv)

    exp = load_experiment(args.experiment)
    load = exp.load.model_copy(
        update={
            "warmup_s": 2.0,
            "stability": exp.load.stability.model_copy(
                update={"window_s": args.step_s, "windows": 2, "max_windows": 3}
            ),
        }
    )
    root = Path(args.artifacts).resolve()
    if not artifacts(exp.model, root).mar.is_file():
        export_model(exp.model, root)
    seed = read_records(exp.model, root)[1]["seed"] if read_records(exp.model, root) else None
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, gen_cpus = (tuple(cpus[:1]), list(cpus[1:2])) if len(cpus) >= 2 else (None, None)
    work = Path(tempfile.mkdtemp(prefix="torchserve-logbench-"))
    payloads = PayloadSet.build(
        get_model(exp.model),
        exp.seed,
        exp.payload.batch_size,
        exp.payload.distinct_inputs,
        atol=exp.payload.atol,
        weights_seed=seed,
    )
    payloads_path = str(payloads.save(work))
    target = Target(server="torchserve", protocol="rest")  # type: ignore[arg-type]
    rps: dict[tuple[str, int], list[float]] = {}
    logged: dict[str, list[float]] = {lv: [] for lv in LEVELS}
    index = 0
    levels = LEVELS[::-1] if args.quiet_first else LEVELS
    for rnd in range(args.rounds):
        for level in levels if rnd % 2 == 0 else levels[::-1]:
            # One server at a time, started afresh: two servers side by side on one CPU did not
            # share it evenly (the one started first measured faster, whichever it was).
            srv = start_server(
                "torchserve",
                exp.model,
                work / f"{level}-r{rnd}",
                root,
                cpus=server_cpus,
                resources=exp.resources.model_dump(),
                tuning={"workers": exp.tuning.workers, "logging": level},
            )
            try:
                assert srv.process is not None
                for c in args.concurrency:
                    before = _log_bytes(work / f"{level}-r{rnd}")
                    spec = make_spec(
                        run_id="logbench",
                        index=index,
                        target=target,
                        address=srv.address(target.protocol),
                        load=load,
                        param=("concurrency", c),
                        payloads_path=payloads_path,
                        model=exp.model,
                        payload=exp.payload,
                        seed=exp.seed,
                        server_pids=[p.pid for p in srv.process.tree()],
                        server_cpu_budget=exp.resources.cpus,
                    )
                    index += 1
                    res = run_step(spec, work, cpus=gen_cpus)
                    logged[level].append(
                        (_log_bytes(work / f"{level}-r{rnd}") - before) / max(1, res.ok)
                    )
                    rps.setdefault((level, c), []).append(res.throughput_rps)
                    print(
                        f"round {rnd + 1} logging={level:7s} c={c}: {res.throughput_rps:7.1f} req/s, "
                        f"p50 {res.latency_ms.p50 or float('nan'):.2f} ms, steady {res.steady}, "
                        f"errors {sum(res.transport_errors.values())}",
                        flush=True,
                    )
            finally:
                srv.stop()
    print(
        f"\nTorchServe REST, {exp.model}, batch {exp.payload.batch_size}, {exp.resources.cpus:g} CPU; "
        f"{args.rounds} interleaved rounds"
    )
    for c in args.concurrency:
        d, q = rps[("default", c)], rps[("quiet", c)]
        ratios = [b / a for a, b in zip(d, q, strict=True) if a > 0 and b > 0]
        gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
        print(
            f"  c={c}: default {min(d):.1f}-{max(d):.1f} req/s, quiet {min(q):.1f}-{max(q):.1f} req/s; "
            f"quiet/default x{gm:.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})"
        )
    for lv in LEVELS:
        print(
            f"  logging={lv}: {sum(logged[lv]) / len(logged[lv]):.0f} log bytes written per measured ok "
            "request (warm-up requests log too, so an upper bound)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
