"""``servecmp`` command line: thin wrappers; the logic lives in the modules each command names.

Heavy imports (torch, tensorflow, locust) happen inside the command that needs them so that
``servecmp --help`` and ``servecmp validate`` stay instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from servecmp.experiment import ExperimentError, load_experiment
from servecmp.log import setup as setup_logging
from servecmp.models.registry import DEFAULT_SEED

DEFAULT_ARTIFACTS = Path("build/models")
DEFAULT_RUNS = Path("runs")


def _cmd_validate(args: argparse.Namespace) -> int:
    exp = load_experiment(args.experiment)
    print(f"{args.experiment}: valid ({len(exp.targets)} targets, digest {exp.digest()})")
    for t in exp.targets:
        print(f"  {t.name}{'  (native-encoding extra)' if t.is_native_extra else ''}")
    return 0


def _cmd_configs(args: argparse.Namespace) -> int:
    from servecmp.configgen import Placement, render_all, write_configs

    exp = load_experiment(args.experiment)
    if args.placement != "kubernetes":
        raise SystemExit(
            "configs: only --placement kubernetes is written standalone; "
            "the local runtime writes its own (free ports) into the run directory"
        )
    dirs = write_configs(render_all(exp, Placement.kubernetes()), Path(args.out))
    for server, d in sorted(dirs.items()):
        print(f"{server}: {d}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from servecmp.models import commands

    # every --model given (the list argparse collected)
    return commands.export_command(
        args.out, args.model or None, args.seed, args.versions, port=not args.no_port
    )


def _cmd_parity(args: argparse.Namespace) -> int:
    from servecmp.models import commands

    return commands.parity_command(args.model or None, args.seed, args.n)


def _cmd_golden(args: argparse.Namespace) -> int:
    from servecmp.models import commands

    return commands.golden_command(args.model or None, args.seed)


def _cmd_run(args: argparse.Namespace) -> int:
    from servecmp.run.orchestrate import run_experiment

    exp = load_experiment(args.experiment)
    run_dir = run_experiment(
        exp,
        experiment_path=Path(args.experiment),
        runs_root=Path(args.runs),
        artifacts_root=Path(args.artifacts),
        quick=args.quick,
        only=args.target or None,
        prometheus=not args.no_prometheus,
        report=not args.no_report,
    )
    print(f"results: {run_dir}")
    return 0


def _cmd_steps(args: argparse.Namespace) -> int:
    """One target's whole load profile against an address: what the in-cluster Job runs."""
    from servecmp.load.engine import run_target
    from servecmp.results.provenance import build_meta
    from servecmp.results.schema import StepResult, TargetAvailability
    from servecmp.results.store import RunStore

    exp = load_experiment(args.experiment)
    match = [t for t in exp.targets if t.name == args.target]
    if not match:
        known = ", ".join(t.name for t in exp.targets)
        raise SystemExit(
            f"--target: {args.target!r} is not in {args.experiment}; its targets: {known}"
        )
    out = Path(args.out)
    if args.metrics_port:
        # Step processes write to a shared multiprocess dir; this process serves the sum.
        from servecmp.observability import generator_metrics as gm

        gm.enable_multiprocess(out / "tmp" / "prom-multiproc")
        gm.start_exposition(args.metrics_port, host=args.metrics_host)
    store = RunStore(out)
    meta = build_meta(exp, args.run_id, placement={"kind": "in-cluster loadgen"})
    store.write_meta(meta)
    store.append_target(
        TargetAvailability(target=args.target, available=True, address=args.address)
    )
    from servecmp.cluster.loadgen import STEP_MARK
    from servecmp.load.engine.burnin import describe, run_burn_in

    # The local run's burn-in (load.burn_in), with the same engine helper: the server was just
    # installed, and its first steps would otherwise measure its warm-up. Never a measured step.
    burned = run_burn_in(
        exp,
        match[0],
        args.address,
        out / "burn-in",
        run_id=args.run_id,
        after="start",
        cluster_mode=args.cluster_mode,
    )
    if burned is not None:
        print(describe(burned), flush=True)
        meta.burn_in.append(burned)
        store.write_meta(meta)

    def landed(r: StepResult) -> None:
        # each finished step goes to stdout at once: the Job's log is followed from outside, so a
        # Job killed at its deadline loses no finished step (servecmp.cluster.loadgen)
        print(
            f"{r.step_id}: {r.throughput_rps:.1f} req/s, p99 {r.latency_ms.p99} ms, valid={r.valid}"
        )
        print(STEP_MARK + r.model_dump_json(), flush=True)

    run_target(
        exp,
        match[0],
        args.address,
        out,
        run_id=args.run_id,
        cluster_mode=args.cluster_mode,
        on_result=landed,
        # the latency breakdown: the server's page read at each window's edge, or why not
        server_metrics_url=args.server_metrics_url or None,
        server_metrics_unread=args.server_metrics_unread or None,
    )
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from servecmp.tune import TuneError, run_tune

    exp = load_experiment(args.experiment)
    out = (
        Path(args.out) if args.out else Path("loadtests") / "experiments" / f"tuned-{exp.name}.yaml"
    )
    try:
        tune_dir = run_tune(
            args.experiment,
            budget_minutes=args.budget_minutes,
            servers=args.server or None,
            resume=Path(args.resume) if args.resume else None,
            strategy=args.strategy,
            runs_root=Path(args.runs),
            artifacts_root=Path(args.artifacts),
            out=out,
            cluster=args.cluster,
        )
    except TuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"tune results: {tune_dir}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from servecmp.report.build import build_report_cli

    return build_report_cli(Path(args.run_dir), compare=args.compare, force=args.force)


def _cmd_kind_up(args: argparse.Namespace) -> int:
    from servecmp.cluster import commands

    return commands.up(Path(args.experiment))


def _cmd_kind_load(args: argparse.Namespace) -> int:
    from servecmp.cluster import commands

    locust = {
        flag: getattr(args, flag)
        for flag in ("duration", "users", "workers", "locustfile")
        if getattr(args, flag) is not None
    }
    return commands.load(
        Path(args.experiment),
        targets=args.target or (),
        recover=args.recover,
        engine=args.engine,
        locust_args=locust,
    )


def _cmd_kind_down(args: argparse.Namespace) -> int:
    from servecmp.cluster import commands

    return commands.down()


def _cmd_kind_preflight(args: argparse.Namespace) -> int:
    from servecmp.cluster import preflight

    exp = load_experiment(args.experiment)
    cpus, source = (args.cpus, "--cpus") if args.cpus else preflight.host_cpus()
    ok, msg = preflight.check(
        exp, cpus, source, args.experiment, replicas=args.replicas, loadgen_cpu=args.loadgen_cpu
    )
    print(msg, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 3


def _cmd_kind_values(args: argparse.Namespace) -> int:
    from servecmp.cluster import helmvalues

    config_dir, values_path = helmvalues.write_helm_inputs(
        load_experiment(args.experiment), Path(args.out)
    )
    if args.print_set_file:
        print("\n".join(helmvalues.set_file_args(config_dir)))
    else:
        print(f"configs: {config_dir}\nvalues: {values_path}")
    return 0


def _generate(what: str, generate: Callable[[bool], int], check: bool) -> int:
    """Generated files come from every registered server's adapter: one that cannot be loaded is
    named, not a traceback."""
    try:
        return generate(check)
    except (ImportError, AttributeError, KeyError) as err:
        print(
            f"error: gen {what}: a registered server adapter cannot be loaded "
            f"(servecmp.servers.registry.MODULES): {err}",
            file=sys.stderr,
        )
        return 2


def _cmd_gen_dashboards(args: argparse.Namespace) -> int:
    from servecmp.observability import dashboards

    return _generate("dashboards", dashboards.generate, args.check)


def _cmd_gen_rules(args: argparse.Namespace) -> int:
    from servecmp.observability import rules

    return _generate("rules", rules.generate, args.check)


def _cmd_gen_chart_values(args: argparse.Namespace) -> int:
    from servecmp.cluster import helmvalues

    return _generate("chart-values", helmvalues.generate_chart_defaults, args.check)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="servecmp",
        description="Deploy one model behind several model servers and measure them side by side.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        fn: Callable[[argparse.Namespace], int],
        help_: str,
        parent: Any = sub,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, help=help_, description=help_, parents=list(parents))
        sp.set_defaults(func=fn)
        return sp

    sp = add("validate", _cmd_validate, "check an experiment file and list its targets")
    sp.add_argument("experiment")

    sp = add("configs", _cmd_configs, "write the generated server configs (Helm mounts these)")
    sp.add_argument("experiment")
    sp.add_argument("--placement", choices=["kubernetes"], default="kubernetes")
    sp.add_argument("--out", default="build/configs")

    models = argparse.ArgumentParser(add_help=False)
    models.add_argument(
        "--model",
        action="append",
        help="built-in model name or model card file (repeatable; default: every built-in)",
    )
    models.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help="weights seed (default %(default)s)"
    )

    sp = add(
        "export",
        _cmd_export,
        "export the model(s) for every server (.mar + SavedModel) and check parity",
        parents=[models],
    )
    sp.add_argument("--out", type=Path, default=DEFAULT_ARTIFACTS)
    sp.add_argument(
        "--versions",
        nargs="+",
        type=int,
        default=[1],
        help="model versions; version v uses seed+v-1 (default: 1)",
    )
    sp.add_argument(
        "--no-port",
        action="store_true",
        help="skip the ONNX -> TensorFlow port (no SavedModel: TF Serving and the TF baseline "
        "are unavailable for the model; a built-in's TF twin is still written)",
    )

    sp = add(
        "parity", _cmd_parity, "check that PyTorch and TF compute the same logits", parents=[models]
    )
    sp.add_argument("-n", type=int, default=32, help="random inputs besides the golden ones")

    add("golden", _cmd_golden, "regenerate servecmp/models/golden/<name>.npz", parents=[models])

    sp = add("run", _cmd_run, "run an experiment locally and store the results (the main job)")
    sp.add_argument("experiment", nargs="?", default="loadtests/experiments/quick.yaml")
    sp.add_argument(
        "--quick", action="store_true", help="short windows and warm-up (≤ 5 min on 2 cores)"
    )
    sp.add_argument("--target", action="append", help="only this target name (repeatable)")
    sp.add_argument("--runs", default=str(DEFAULT_RUNS), help="parent directory of run directories")
    sp.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS))
    sp.add_argument("--no-prometheus", action="store_true", help="do not start a local Prometheus")
    sp.add_argument("--no-report", action="store_true", help="do not build the report at the end")

    sp = add(
        "steps", _cmd_steps, "run one target's load profile against an address (in-cluster Job)"
    )
    sp.add_argument("experiment")
    sp.add_argument("--target", required=True, help="target name from the experiment")
    sp.add_argument(
        "--address",
        required=True,
        help="host:port (loopback, or a cluster Service with --cluster-mode)",
    )
    sp.add_argument("--out", required=True, help="run directory to write")
    sp.add_argument("--run-id", default="steps")
    sp.add_argument(
        "--cluster-mode", action="store_true", help="allow cluster Service DNS names as targets"
    )
    sp.add_argument(
        "--metrics-port", type=int, default=0, help="serve the generator's servecmp_* metrics"
    )
    sp.add_argument("--metrics-host", default="127.0.0.1", help="bind address of --metrics-port")
    sp.add_argument(
        "--server-metrics-url",
        default="",
        help="the server's metrics page, read at each window's edges (latency breakdown)",
    )
    sp.add_argument(
        "--server-metrics-unread",
        default="",
        help="why the server's metrics page is not read (each step's breakdown says so)",
    )

    sp = add(
        "tune",
        _cmd_tune,
        "search each server's own best configuration under the experiment's budget",
    )
    sp.add_argument("experiment")
    sp.add_argument(
        "--budget-minutes", type=float, default=15.0, help="time for the whole search (all servers)"
    )
    sp.add_argument(
        "--server", action="append", help="only this server (repeatable; default: every server)"
    )
    sp.add_argument(
        "--resume", help="a tune run directory to continue (finished configurations are reused)"
    )
    sp.add_argument(
        "--strategy",
        choices=["coordinate", "grid"],
        default="coordinate",
        help="coordinate descent + confirmation (default) or the exhaustive grid (reference)",
    )
    sp.add_argument(
        "--out", help="tuned experiment file (default loadtests/experiments/tuned-<name>.yaml)"
    )
    sp.add_argument(
        "--cluster",
        action="store_true",
        help="roll candidates out to the kind cluster (helm upgrade) "
        "and measure them with the in-cluster step engine",
    )
    sp.add_argument(
        "--runs", default=str(DEFAULT_RUNS), help="parent directory of tune run directories"
    )
    sp.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS))

    sp = add("report", _cmd_report, "build the HTML + Markdown report from a stored run")
    sp.add_argument("run_dir")
    sp.add_argument("--compare", help="another run directory to compare against")
    sp.add_argument(
        "--force", action="store_true", help="compare even when fairness settings differ"
    )

    kind = sub.add_parser(
        "kind",
        help="the kind cluster path: preflight, values, up, load, down",
        description="the kind cluster path (needs docker, kind, kubectl, helm)",
    )
    ksub = kind.add_subparsers(dest="kind_command", required=True, metavar="KIND_COMMAND")
    sp = add(
        "up",
        _cmd_kind_up,
        "create the cluster, install monitoring and every server chart, wait",
        ksub,
    )
    sp.add_argument("experiment", nargs="?", default="loadtests/experiments/quick.yaml")
    sp = add(
        "load",
        _cmd_kind_load,
        "run the experiment's load in-cluster; steps land in runs/kind-<time>/",
        ksub,
    )
    sp.add_argument("experiment", nargs="?", default="loadtests/experiments/quick.yaml")
    sp.add_argument("--target", action="append", help="only this target name (repeatable)")
    sp.add_argument("--recover", action="store_true", help="also measure pod recovery after a kill")
    sp.add_argument("--engine", choices=["steps", "locust"], default="steps")
    sp.add_argument("--duration", type=float, help="locust engine only: seconds")
    sp.add_argument("--users", type=int, help="locust engine only")
    sp.add_argument("--workers", type=int, help="locust engine only")
    sp.add_argument("--locustfile", help="locust engine only")
    add("down", _cmd_kind_down, "delete the kind cluster", ksub)
    sp = add(
        "preflight",
        _cmd_kind_preflight,
        "does the experiment fit on this host's kind nodes? (exit 3: no)",
        ksub,
    )
    sp.add_argument("experiment", nargs="?", default="loadtests/experiments/quick.yaml")
    sp.add_argument(
        "--cpus", type=float, help="CPUs per kind node (default: docker info NCPU, else this host)"
    )
    sp.add_argument(
        "--replicas", type=int, help="server replicas (default: the chart's global.replicas)"
    )
    sp.add_argument(
        "--loadgen-cpu",
        type=float,
        help="CPU of the load pods on the loadgen node (default: one steps Job; Locust: 1 + workers)",
    )
    sp = add(
        "values",
        _cmd_kind_values,
        "write the generated server configs and the Helm values file",
        ksub,
    )
    sp.add_argument("experiment", nargs="?", default="loadtests/experiments/quick.yaml")
    sp.add_argument("--out", default="build/kind")
    sp.add_argument(
        "--print-set-file", action="store_true", help="print the --set-file arguments, one per line"
    )

    gen = sub.add_parser(
        "gen",
        help="regenerate committed files: dashboards, rules",
        description="regenerate (or --check) files generated from the code",
    )
    gsub = gen.add_subparsers(dest="gen_command", required=True, metavar="WHAT")
    for name, fn, what in (
        ("dashboards", _cmd_gen_dashboards, "the Grafana dashboard JSON"),
        ("rules", _cmd_gen_rules, "the Prometheus recording rules"),
        ("chart-values", _cmd_gen_chart_values, "the subcharts' default configs and wire"),
    ):
        sp = add(name, fn, f"write {what} (helm/servecmp/) from the server registry", gsub)
        sp.add_argument(
            "--check", action="store_true", help="exit 1 when the committed files drift instead"
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args))
    except ExperimentError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every finished step is on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
