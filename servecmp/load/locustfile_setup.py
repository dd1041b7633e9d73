"""Shared wiring for the thin locustfiles: custom arguments and the LoadContext per test.

Importing this module registers listeners on ``locust.events``; import it from a locustfile.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import locust  # noqa: F401  - gevent patching first
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from servecmp.experiment import Experiment, LoadProfile, load_experiment
from servecmp.load.engine.context import Budget, LoadContext
from servecmp.load.engine.spec import check_address

log = logging.getLogger(__name__)

# Seconds a shape-less run (closed_loop.py driven from the UI) may last before users stop.
NO_SHAPE_MAX_SECONDS = float(os.environ.get("SERVECMP_MAX_SECONDS", "3600"))


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    g = parser.add_argument_group("servecmp")
    g.add_argument(
        "--sc-experiment",
        env_var="SERVECMP_EXPERIMENT",
        default="loadtests/experiments/quick.yaml",
        help="experiment YAML",
    )
    g.add_argument(
        "--sc-target",
        env_var="SERVECMP_TARGET",
        default="",
        help="target name, e.g. torchserve-rest-json",
    )
    g.add_argument(
        "--sc-address", env_var="SERVECMP_ADDRESS", default="", help="host:port of the target"
    )
    g.add_argument(
        "--sc-payloads", env_var="SERVECMP_PAYLOADS", default="", help="PayloadSet .npz or run dir"
    )
    g.add_argument(
        "--sc-cluster-mode",
        env_var="SERVECMP_CLUSTER_MODE",
        action="store_true",
        default=False,
        help="allow a cluster Service DNS name as address (kind path)",
    )
    g.add_argument(
        "--sc-max-in-flight",
        env_var="SERVECMP_MAX_IN_FLIGHT",
        type=int,
        default=64,
        help="open loop: in-flight request bound",
    )


def _pick_target(exp: Experiment, name: str) -> Any:
    names = [t.name for t in exp.targets]
    if not name and len(names) == 1:
        return exp.targets[0]
    for t in exp.targets:
        if t.name == name:
            return t
    raise SystemExit(
        f"--sc-target {name!r} is not in the experiment; choose one of: {', '.join(names)}"
    )


def _stages(exp: Experiment, shape: Any) -> int:
    if shape is None:
        return 1
    kind = type(shape).__name__
    if kind == "ConcurrencySweepShape":
        return len(exp.load.concurrency)
    if kind == "RateSweepShape":
        return len(exp.load.rates)
    return 1


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is None or not hasattr(opts, "sc_experiment"):
        return  # used as a library (the engine attaches its own context)
    shape = type(environment.shape_class).__name__ if environment.shape_class is not None else ""
    if shape in ("OpenLoopShape", "RateSweepShape") and isinstance(
        environment.runner, MasterRunner | WorkerRunner
    ):
        # The arrival schedule and the sweep's HDR probe live in one process; split over workers
        # they would multiply the rate and judge the SLO on nothing. Refuse instead of lying.
        raise SystemExit(
            f"{shape}: open-loop profiles run in a single Locust process; drop --processes / "
            "--master / --worker (one process drives > 5,000 req/s, far above a model server)"
        )
    exp = load_experiment(opts.sc_experiment)
    target = _pick_target(exp, opts.sc_target)
    check_address(opts.sc_address or None, cluster_mode=bool(opts.sc_cluster_mode), target=target)
    if isinstance(environment.runner, MasterRunner):
        return  # the master sends no requests
    from servecmp.load.engine.clientmaker import make_client_maker

    maker = make_client_maker(
        target,
        opts.sc_address,
        model=exp.model,
        payload=exp.payload,
        seed=exp.seed,
        payloads_path=opts.sc_payloads or None,
        timeout_s=exp.load.request_timeout_s,
    )
    environment.servecmp = LoadContext(
        new_client=maker,
        n_inputs=int(getattr(maker, "n_inputs", exp.payload.distinct_inputs)),
        budget=Budget(0, 0),
        late_threshold_s=exp.load.late_threshold_ms / 1000.0,
        max_in_flight=int(opts.sc_max_in_flight),
        arrival=exp.load.arrival.value,
        seed=exp.seed,
        protocol=target.protocol.value,
        load=exp.load,
    )
    environment.servecmp.extra["experiment"] = exp


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    ctx = getattr(environment, "servecmp", None)
    exp = ctx.extra.get("experiment") if ctx is not None else None
    if ctx is None or exp is None:
        return
    shape = environment.shape_class
    if shape is not None:
        from servecmp.load.shapes import stage_seconds

        seconds = _stages(exp, shape) * stage_seconds(exp.load) + 5.0
    else:
        seconds = NO_SHAPE_MAX_SECONDS
    # a fresh bound per test (the web UI can start several); count: per stage of the profile
    ctx.budget = Budget(exp.load.max_requests_per_step * _stages(exp, shape), seconds)
    ctx.counters.__init__()
    if exp.load.profile is LoadProfile.open_loop and ctx.rate.rate <= 0:
        ctx.rate.rate = exp.load.rate


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    ctx = getattr(environment, "servecmp", None)
    if ctx is not None and ctx.counters.scheduled:
        c = ctx.counters
        log.info(
            "open loop: scheduled=%d sent=%d late=%d (backpressure=%d, generator=%d) owed_at_end=%d",
            c.scheduled,
            c.sent,
            c.late,
            c.late_backpressure,
            c.late_generator,
            c.owed_at_end,
        )
