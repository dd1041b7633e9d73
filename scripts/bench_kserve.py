"""KServe figures outside a full run (not a test): cold start, idle RSS and req/s per protocol at
``loadtests/experiments/quick.yaml``'s settings (1 CPU, 1 worker, batch 1, closed loop), each step run by
the project's load engine exactly as in ``servecmp run``. The in-process PyTorch baseline runs
the same TorchScript file on the same CPU for reference.

    .venv/bin/python scripts/bench_kserve.py [--experiment loadtests/experiments/quick.yaml]
        [--artifacts build/models/seed-1234] [--rounds 2]

The server is pinned to CPU 0 and the generator to CPU 1 when two are usable. Rounds alternate
the target order (A B C, C B A). Numbers on a shared machine are indicative only: report ranges.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from servecmp.experiment import Target, load_experiment


def main(argv: list[str] | None = None) -> int:
    from servecmp.load.engine.runner import run_step
    from servecmp.load.engine.spec import make_spec
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.export import artifacts, read_records
    from servecmp.models.registry import get_model
    from servecmp.run.standalone import start_server

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="loadtests/experiments/quick.yaml")
    ap.add_argument(
        "--artifacts", default="build/models/seed-1234", help="export root holding <model>/"
    )
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)

    exp = load_experiment(args.experiment)
    root = Path(args.artifacts).resolve()
    seed = read_records(exp.model, root)[1]["seed"] if read_records(exp.model, root) else None
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, gen_cpus = (tuple(cpus[:1]), list(cpus[1:2])) if len(cpus) >= 2 else (None, None)
    work = Path(tempfile.mkdtemp(prefix="kserve bench "))
    server = start_server(
        "kserve",
        exp.model,
        work,
        root,
        cpus=server_cpus,
        resources=exp.resources.model_dump(),
        tuning=exp.tuning.model_dump(exclude_none=True),
    )
    try:
        assert server.started_at is not None and server.ready_at is not None
        print(
            f"cold start (process start -> model ready): {server.ready_at - server.started_at:.2f} s"
        )
        time.sleep(3.0)
        assert server.process is not None
        rss = sum(p.memory_info().rss for p in server.process.tree())
        print(
            f"idle RSS (process tree, {len(server.process.tree())} processes): {rss / 2**20:.0f} MiB"
        )

        payloads = PayloadSet.build(
            get_model(exp.model),
            exp.seed,
            exp.payload.batch_size,
            exp.payload.distinct_inputs,
            atol=exp.payload.atol,
            weights_seed=seed,
        )
        payloads_path = str(payloads.save(work))
        model_pt = work / "models" / "kserve" / exp.model / "1" / "model.pt"
        assert artifacts(exp.model, root).mar.is_file()
        targets = [t for t in exp.targets if str(t.server) == "kserve"]
        targets.append(Target(server="pytorch", protocol="inprocess"))  # type: ignore[arg-type]
        rows: dict[tuple[str, int], list[float]] = {}
        index = 0
        for rnd in range(args.rounds):
            order = targets if rnd % 2 == 0 else list(reversed(targets))
            for target in order:
                address = str(model_pt) if target.is_baseline else server.address(target.protocol)
                for c in exp.load.concurrency:
                    kw: dict[str, object] = (
                        {
                            "client_options": {
                                "intra_op_threads": exp.intra_op_threads,
                                "workers": exp.tuning.workers,
                            }
                        }
                        if target.is_baseline
                        else {
                            "server_pids": [p.pid for p in server.process.tree()],
                            "server_cpu_budget": exp.resources.cpus,
                        }
                    )
                    spec = make_spec(
                        run_id="kserve-bench",
                        index=index,
                        target=target,
                        address=address,
                        load=exp.load,
                        param=("concurrency", c),
                        payloads_path=payloads_path,
                        model=exp.model,
                        payload=exp.payload,
                        seed=exp.seed,
                        **kw,
                    )
                    index += 1
                    res = run_step(spec, work, cpus=server_cpus if target.is_baseline else gen_cpus)
                    rows.setdefault((target.name, c), []).append(res.throughput_rps)
                    print(
                        f"round {rnd + 1} {target.name:24s} c={c}: {res.throughput_rps:7.1f} req/s ok, "
                        f"p50 {res.latency_ms.p50 or float('nan'):.2f} ms, wrong {res.wrong_answers}, "
                        f"errors {sum(res.transport_errors.values())}, stop {res.stop_reason}",
                        flush=True,
                    )
        print("\nreq/s (ok answers) per target and concurrency, min-max over rounds:")
        for (name, c), vals in rows.items():
            print(f"  {name:24s} c={c}: {min(vals):7.1f} - {max(vals):7.1f}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
