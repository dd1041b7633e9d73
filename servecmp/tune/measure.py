"""One candidate = one server started with one configuration + the experiment's load profile on
one of its targets, measured with the run's own pieces (servecmp/run/orchestrate.py ``LocalRun``:
``prepare`` / ``bring_up``, the step engine through ``_run_target``), level by level so a clearly
worse configuration stops early. Nothing else is started; the friction probes of a full run
(bad payloads, model update, kill and recovery) are not part of a tune measurement. A
confirmation measurement burns the fresh server in first (burnin.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servecmp.experiment import Experiment, LoadProfile, Target
from servecmp.results.schema import StepResult
from servecmp.tune.space import Candidate, variant
from servecmp.tune.store import Level, Measurement, Stage

# Objective (issue 13): highest throughput whose p99 meets the SLO with <= 0.1 % errors.
MAX_ERROR_FRACTION = 0.001
# Early stop: a level more than this far below the incumbent's throughput at the same level
# means the configuration is clearly worse: its remaining levels are not measured.
EARLY_STOP_MARGIN = 0.25


def target_for(exp: Experiment, server: str) -> Target:
    """The target a server is tuned on: its first in the experiment (the fair common encoding
    comes first in every shipped experiment)."""
    for t in exp.targets:
        if t.server == server:
            return t
    raise ValueError(f"{server}: no target in experiment {exp.name!r}")


def param_text(param: tuple[str, float]) -> str:
    """A plan entry as a level name: ("concurrency", 4.0) -> "concurrency=4"."""
    return f"{param[0]}={param[1]:g}"


def level_of(step: StepResult, slo_ms: float) -> Level:
    p99 = step.latency_ms.p99
    param = (
        f"concurrency={step.concurrency}" if step.mode == "closed_loop" else f"rate={step.rate:g}"
    )
    cpu = step.generator.server_cpu_fraction if step.generator else None
    ok = (
        step.valid
        and step.disrupted is None
        and p99 is not None
        and p99 <= slo_ms
        and step.error_fraction <= MAX_ERROR_FRACTION
        and step.throughput_rps > 0
    )
    return Level(
        param=param,
        throughput_rps=step.throughput_rps,
        p50_ms=step.latency_ms.p50,
        p99_ms=p99,
        error_fraction=step.error_fraction,
        valid=step.valid,
        steady=step.steady,
        disrupted=step.disrupted,
        slo_ok=ok,
        server_cpu=cpu,
        step_id=step.step_id,
        breakdown=step.breakdown,
    )


def score(m: Measurement) -> None:
    """Fill the objective from the levels: best SLO-meeting throughput, its p99 and CPU.

    Unsteady steps count (their flag is stored and shown): a tune measurement is short, and the
    top candidates are re-measured in interleaved rounds before a winner is named."""
    ok = [lv for lv in m.levels if lv.slo_ok]
    if not ok:
        m.score_rps, m.score_p99_ms, m.server_cpu = 0.0, None, None
        return
    best = max(ok, key=lambda lv: lv.throughput_rps)
    m.score_rps, m.score_p99_ms, m.server_cpu = best.throughput_rps, best.p99_ms, best.server_cpu


def start_measurement(cand: Candidate, target: Target, stage: Stage, rnd: int) -> Measurement:
    """The record of one measurement of ``cand`` on ``target``, started now and still empty: the
    local and the cluster measurer fill its levels, then ``finish`` scores it. Its run directory
    (``candidate_dir``, relative to the tune dir) is unique per configuration, stage and round."""
    rel = Path("candidates") / cand.server / f"{cand.id}-{stage}-r{rnd}"
    return Measurement(
        server=cand.server,
        target=target.name,
        config_id=cand.id,
        config=cand.as_dict(),
        label=cand.label(),
        stage=stage,
        round=rnd,
        started_at=datetime.now(UTC).isoformat(),
        duration_s=0.0,
        candidate_dir=str(rel),
    )


def finish(m: Measurement, t0: float) -> Measurement:
    """Score ``m`` from its levels and stamp its duration since ``t0`` (``time.monotonic``)."""
    score(m)
    m.duration_s = round(time.monotonic() - t0, 2)
    return m


class LocalMeasurer:
    """Measures candidates on this machine; each in its own run directory under the tune dir."""

    def __init__(
        self,
        exp: Experiment,
        tune_dir: Path,
        artifacts_root: Path,
        log: Callable[[str], None] = print,
    ) -> None:
        self.exp = exp
        self.tune_dir = tune_dir
        self.artifacts_root = artifacts_root
        self.log = log

    def measure(
        self,
        cand: Candidate,
        stage: Stage,
        rnd: int,
        incumbent: Measurement | None = None,
        level: str | None = None,
    ) -> Measurement:
        """``level`` (e.g. ``concurrency=4``): measure only that load level of the profile."""
        from servecmp.load.engine import plan_steps
        from servecmp.run import probes
        from servecmp.run.orchestrate import LocalRun

        exp = variant(self.exp, cand)
        target = target_for(exp, cand.server)
        m = start_measurement(cand, target, stage, rnd)
        run_dir = self.tune_dir / m.candidate_dir
        if run_dir.exists():  # a measurement killed half-way: its partial steps are kept aside
            run_dir.rename(run_dir.with_name(f"{run_dir.name}.killed-{int(time.time())}"))
        t0 = time.monotonic()
        run = LocalRun(
            exp,
            run_dir=run_dir,
            artifacts_root=self.artifacts_root,
            prometheus=False,
            friction_under_load=False,
        )
        run.prepare()
        gen = run.placement.generator_cpus if run.placement.pinned else None
        base_cpus = run.placement.server_cpus if run.placement.pinned else None
        server: Any = None
        try:
            if not target.is_baseline:
                server = run.bring_up(cand.server, [target])
                if server is None:
                    m.unavailable = next(
                        (n for n in run.notes if n.startswith(f"{cand.server} unavailable")),
                        f"{cand.server} did not start",
                    )
                    return finish(m, t0)
            if stage == "confirm" and server is not None:
                m.burn_in = self._burn_in(run, exp, target, server, level)
            ref = {lv.param: lv for lv in incumbent.levels} if incumbent else {}
            plan = plan_steps(exp.load)
            if level is not None:
                plan = [p for p in plan if param_text(p) == level] or plan
            screening = stage == "screen" and exp.load.profile is LoadProfile.closed_loop
            if screening:
                # Screening (successive-halving style: a cheap first look, the full profile for the
                # re-measured top candidates): the highest concurrency first, stopping at the first
                # level that meets the SLO. Closed-loop throughput does not fall as concurrency
                # rises below saturation, so that level holds the best SLO-meeting throughput.
                plan = plan[::-1]
            for param in plan:
                before, n0 = len(run.results), len(m.levels)
                if server is None:
                    own = exp.for_server(cand.server)
                    artifact = run._baseline_artifact(target)
                    run._run_target(
                        target,
                        str(artifact),
                        repeat=rnd,
                        cpus=base_cpus,
                        params=[param],
                        client_options={
                            "intra_op_threads": own.intra_op_threads,
                            "workers": own.tuning.workers,
                        },
                    )
                else:
                    root = server.measured_pid() if server.process.alive() else None
                    if root is None:
                        m.early_stop = f"{cand.server} died during the measurement"
                        break
                    run._run_target(
                        target,
                        server.address(target.protocol),
                        repeat=rnd,
                        cpus=gen,
                        params=[param],
                        server_pids=[p.pid for p in probes.tree(root)],
                        # read at every window's edges: the step's latency breakdown
                        server_metrics_url=run.configs_url(cand.server),
                    )
                for step in run.results[before:]:
                    m.levels.append(level_of(step, exp.load.slo_p99_ms))
                last = m.levels[-1] if len(m.levels) > n0 else None
                inc = ref.get(last.param) if last else None
                if (
                    last
                    and inc
                    and inc.slo_ok
                    and last.throughput_rps < (1 - EARLY_STOP_MARGIN) * inc.throughput_rps
                ):
                    m.early_stop = (
                        f"stopped early at {last.param}: {last.throughput_rps:.1f} req/s is more than "
                        f"{EARLY_STOP_MARGIN:.0%} below the incumbent's {inc.throughput_rps:.1f}"
                    )
                    break
                if screening and last and last.slo_ok:
                    break  # lower concurrency cannot serve more under the SLO
        finally:
            if server is not None:
                sampler = run._samplers.pop(server.name, None)
                if sampler is not None:
                    sampler.stop()
                    m.peak_rss_bytes = sampler.peak_rss or None
                server.stop()
                run.live_servers.pop(server.name, None)
            for s in run._samplers.values():
                s.stop()
            run.finish_meta()
        return finish(m, t0)

    def _burn_in(
        self, run: Any, exp: Experiment, target: Target, server: Any, level: str | None
    ) -> dict[str, float]:
        """Confirmation only: the fresh server under a short bounded warm load at the level's
        concurrency before it is measured (in-process baselines load their model per step: none)."""
        from servecmp.load.clients import make_client
        from servecmp.tune.burnin import burn_in, level_concurrency

        address = server.address(target.protocol)
        b = burn_in(
            lambda: make_client(target, address, run.payloads, exp.load.request_timeout_s),
            len(run.payloads),
            level_concurrency(level),
        )
        self.log(
            f"  burn-in {target.name}: {b.requests} requests in {b.seconds:.0f} s ({b.failures} failed)"
        )
        return {"seconds": b.seconds, "requests": float(b.requests), "failures": float(b.failures)}
