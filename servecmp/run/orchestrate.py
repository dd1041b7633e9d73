"""``servecmp run``: the embedded default — a local side-by-side run that ends in stored results.

Order of work, and why:
1. export the model for every server (once per seed; reused) — the same weights everywhere;
2. write the payloads (seeded inputs + expected logits) into the run dir — every target gets the
   same tensors and is checked against the same answers;
3. generate every server config into the run dir (servecmp/configgen) — the only config source;
4. every available server started in turn (cold start and idle friction measured as each comes
   up, the ones already up idling), all pinned to the same server CPUs while the generator uses
   the others; this start-up round is repeated (stop all, start again) in a rotated order
   (A B C, B C A, C A B, ...) so cold start and idle memory have several measurements each,
   taken under the same drift; the servers of the last round stay up;
5. ``load.repeats`` interleaved rounds: each round runs every target once per load level (all
   targets at the first level, then at the next; same-protocol targets of different servers
   side by side, ``rounds.py``), the order reversed every other round
   (A B C, C B A: counterbalanced), servers and in-process baselines alike (with --quick, a
   baseline whose every server is unavailable is not run: it would pair with nothing; with
   ``load.baseline_rounds: first`` the baselines run in round 1 only) (the idle
   servers' residual CPU is the
   ``idle_cpu_cores`` friction figure). Interleaving (A B A B, rather than A A B B) makes slow
   drift of a shared machine hit both sides of every comparison; the report pairs the steps of a
   round and states each difference with an interval from those pairs;
   then each server's disruptive friction, harmless probes first so none spoils a later one
   (native metrics, small bad payloads, model update, kill and recovery, and last the body over
   the request-size limit, which may take the server down) and stop;
6. Prometheus series stored, the console table printed, the report built.

Every step's result is on disk (fsync'd) as soon as the step ends, so an interrupted run keeps
everything measured so far; every child process is stopped on any exit path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from servecmp.console import print_summary
from servecmp.experiment import Experiment, LoadProfile, Target, parse_experiment
from servecmp.load.clients import make_client
from servecmp.load.engine import plan_steps, run_target
from servecmp.load.payloads import PayloadSet
from servecmp.log import console
from servecmp.models import reference, runcard
from servecmp.models.card import ModelCardError
from servecmp.models.export import (
    NO_TF_TARGET,
    artifacts,
    export_model,
    needs_savedmodel,
    read_records,
    seed_for_version,
)
from servecmp.models.registry import get_model
from servecmp.observability import generator_metrics as gm
from servecmp.observability.process_exporter import ProcessExporter
from servecmp.observability.scrape_config import local_scrape_config
from servecmp.results.friction import append_friction, unavailable
from servecmp.results.provenance import build_meta
from servecmp.results.schema import StepResult, TargetAvailability
from servecmp.results.store import RunStore
from servecmp.run import cpus as cpu_plan
from servecmp.run import friction, probes, watchdog
from servecmp.run import prometheus as prom_mod
from servecmp.run.burnin import BurnIns
from servecmp.run.configs import local_configs, model_root, run_servers
from servecmp.run.ports import free_ports
from servecmp.run.procs import install_handlers
from servecmp.run.rounds import (
    baseline_round,
    interleaved_order,
    planned_steps,
    unpaired_baselines,
)
from servecmp.run.server import LocalServer, ServerFailed, ServerUnavailable
from servecmp.servers import registry

FRICTION_METRICS_PER_SERVER = (
    "cold_start_ready_s", "cold_start_first_inference_s", "idle_rss_bytes", "peak_rss_bytes",
    "idle_cpu_cores", "metric_families", "server_latency_quantiles", "update_s",
    "update_failed_requests", "recovery_s", "recovery_lost_requests", "bad_payload_clear_errors",
    "oversize_crashed", "image_bytes", "install_ready_s",
)  # fmt: skip
CLUSTER_ONLY = {"image_bytes", "install_ready_s"}
T = TypeVar("T")


QUICK_REPEATS = 3
# --quick windows: at most these (shorter ones in the file are kept). Short steps leave time for
# more rounds, and the report's intervals shrink with the rounds (docs/method.md, "Design"): a
# step costs its warm-up and windows plus ~2 s fixed (the step process's start and imports), so
# 0.75 s windows were measured against 1 s ones (docs/figures.md): p99 over so few answers was
# noisier, and the fifth round they paid for resolved no better.
QUICK_STABILITY = {"window_s": 1.0, "windows": 2, "max_windows": 3}
QUICK_BURN_IN = {"max_s": 6.0, "window_s": 1.0}
# --quick: at most this many start-ups per server (experiment friction.startups, default 5)
QUICK_STARTUP_SAMPLES = 3
# --quick: the update and kill timelines from 2 s before to 6 s after the event (the
# experiment's event_load.before_s / after_s, default 10 / 20)
QUICK_EVENT_SPAN_S = {"before_s": 2.0, "after_s": 6.0}
# Start-up metrics: one record per start-up (its index); the rest are measured once.
STARTUP_METRICS = frozenset(
    {"cold_start_ready_s", "cold_start_first_inference_s", "idle_rss_bytes", "idle_cpu_cores"}
)


def quick_profile(exp: Experiment) -> Experiment:
    """Short warm-up and windows, 3 interleaved repeats: the README's main job in minutes on 2 cores."""
    data = exp.model_dump(mode="json")
    data["load"]["warmup_s"] = min(exp.load.warmup_s, 0.5)
    # Shorter steps, but at least 3 interleaved repeats: the report's verdicts need the noise
    # estimated from repeats (windows of one step share the step's drift, repeats do not).
    st = exp.load.stability
    windows = min(st.windows, QUICK_STABILITY["windows"])
    data["load"]["stability"] = {
        "window_s": min(st.window_s, QUICK_STABILITY["window_s"]),
        "windows": windows,
        "tolerance": st.tolerance,
        "max_windows": max(windows, min(st.max_windows, QUICK_STABILITY["max_windows"])),
    }
    data["load"]["repeats"] = max(exp.load.repeats, QUICK_REPEATS)
    if exp.load.burn_in.max_s > 0:  # short, but still until throughput settles
        data["load"]["burn_in"] |= {
            **QUICK_BURN_IN,
            "max_s": min(exp.load.burn_in.max_s, QUICK_BURN_IN["max_s"]),
        }
    data["friction"]["startups"] = min(exp.friction.startups, QUICK_STARTUP_SAMPLES)
    # the update and kill timelines: a short span, so the demo stays short
    data["friction"]["event_load"] |= {
        k: min(v, getattr(exp.friction.event_load, k)) for k, v in QUICK_EVENT_SPAN_S.items()
    }
    return parse_experiment(data, "experiment (--quick)")


_log = logging.getLogger(__name__).info


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Any]:
    """A progress bar over the run's load steps (rich), advanced as each step is stored; on the
    log's console, so log lines print above it."""
    with Progress(
        TextColumn("[bold]steps"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        transient=False,
        console=console(),
    ) as prog:
        task = prog.add_task("", total=total)
        yield _Bar(
            advance=lambda desc: prog.update(task, advance=1, description=desc),
            resize=lambda n: prog.update(task, total=n),
        )


@dataclasses.dataclass(frozen=True)
class _Bar:
    """The progress bar's two handles: one step stored; the planned total once the run knows
    which targets run (an unavailable server's steps are never taken)."""

    advance: Callable[[str], None]
    resize: Callable[[int], None]


def ensure_artifacts(
    model: str, root: Path, seed: int, *, savedmodel: bool = True
) -> dict[int, dict[str, Any]]:
    """Export v1 (measured) and v2 (the model-update test) unless already exported with this seed.
    ``savedmodel=False`` (no TF target in the experiment) skips the ONNX -> TensorFlow port; an
    export made that way is redone, port included, once a TF target needs it."""
    records = read_records(model, root)
    digest = get_model(model).digest()
    if {1, 2} <= set(records) and all(
        records[v].get("card_digest") == digest
        and (not savedmodel or not records[v].get("not_ported"))
        for v in (1, 2)
    ):
        return records
    skip = "" if savedmodel else NO_TF_TARGET
    _log(f"exporting {model} (every server's artifact, seed {seed}) into {root}")
    for version in (1, 2):  # ExportError carries the parity numbers of a refused artifact
        export_model(
            model, root, seed=seed_for_version(seed, version), version=version, skip_port=skip
        )
    return read_records(model, root)


class LocalRun:
    def __init__(
        self,
        exp: Experiment,
        *,
        run_dir: Path,
        artifacts_root: Path,
        prometheus: bool,
        friction_under_load: bool = True,
        startup_samples: int = 1,
        skip_unpaired_baselines: bool = False,
        targets: list[Target] | None = None,
    ) -> None:
        self.exp = exp
        # the servers this run renders, starts and records (``targets``: the run's share of the
        # experiment's); no other registered server leaves a file or a record in the run
        run_targets = exp.targets if targets is None else targets
        self.servers = run_servers(run_targets)
        self.named = {t.server for t in run_targets}  # the servers and in-process baselines
        self.startup_samples = max(1, startup_samples)
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.store = RunStore(run_dir)
        self.artifacts_root = artifacts_root
        self.want_prometheus = prometheus
        self.friction_under_load = friction_under_load
        # --quick: the demo compares servers; a baseline with no server to pair is a lost step
        self.skip_unpaired_baselines = skip_unpaired_baselines
        self.placement = cpu_plan.plan(exp.resources.cpus, exp.resources.pinning)
        self.notes: list[str] = [self.placement.note]
        self.prom: Any = None
        self.live_servers: dict[str, LocalServer] = {}
        self.server_provenance: dict[str, dict[str, Any]] = {}
        self._http: list[Any] = []
        self.index = 0
        self.results: list[StepResult] = []
        self.advance: Any = lambda desc: None
        self.resize_progress: Any = lambda total: None
        self._samplers: dict[str, Any] = {}
        self.burn_ins = BurnIns(
            exp,
            run_dir,
            self.run_id,
            payloads_path=None,
            cpus=self.placement.generator_cpus if self.placement.pinned else None,
            log=_log,
        )

    # ---- set-up ---------------------------------------------------------------------------
    def prepare(self) -> None:
        exp = self.exp
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "experiment.yaml").write_text(
            yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False)
        )
        self.model_root = self.artifacts_root / f"seed-{exp.seed}"
        self.export_records = ensure_artifacts(
            exp.model,
            self.model_root,
            exp.seed,
            savedmodel=needs_savedmodel(t.server for t in exp.targets),
        )
        self.art1 = artifacts(exp.model, self.model_root, 1)
        self.art2 = artifacts(exp.model, self.model_root, 2)
        spec = get_model(exp.model)
        self.spec = spec
        if spec.source.onnx:
            from servecmp.models.onnx_source import ort_version

            self.notes.append(
                f"model {spec.name!r} is an ONNX file: its reference, the `pytorch` baseline and "
                f"every PyTorch-framework server run it in ONNX Runtime {ort_version()} (no "
                "PyTorch); TF Serving and the TF baseline serve its ONNX -> SavedModel port"
            )
        payloads = PayloadSet.build(
            spec,
            exp.seed,
            exp.payload.batch_size,
            exp.payload.distinct_inputs,
            atol=exp.payload.atol,
            weights_seed=seed_for_version(exp.seed, 1),
        )
        self.payloads_path = payloads.save(self.run_dir)
        self.burn_ins.payloads_path = str(self.payloads_path)
        self.payloads = payloads
        # v2's answers, to tell which version served a request during the update test.
        v2 = reference.expected_outputs(
            exp.model, payloads.flat_inputs(), seed_for_version(exp.seed, 2)
        )
        self.expected = {"v1": payloads.expected, "v2": v2.reshape(payloads.expected.shape)}

        runcard.write_run_card(
            self.run_dir,
            runcard.run_card(
                spec,
                reference.torch_model(exp.model, seed_for_version(exp.seed, 1)),
                self.export_records[1],
                runcard.body_bytes(payloads, sorted({t.effective_encoding for t in exp.targets})),
                servers_run=self.named,
            ),
        )
        # Servers and baselines the export has no artifact for (a model without a SavedModel).
        self.no_artifact: dict[str, str] = dict(self.export_records[1].get("unavailable", {}))
        # Each server publishes v1 where it loads from; v2 arrives in the update test.
        for adapter in self.servers:
            if adapter.name not in self.no_artifact:
                adapter.publish(self.art1, model_root(self.run_dir, adapter.name), 1)

        self.configs, self.config_dirs = local_configs(exp, self.run_dir, self.art1, self.servers)

        meta = build_meta(
            exp,
            self.run_id,
            placement={
                **self.placement.as_dict(),
                "servers_run": "all up together on the server CPUs; load on one target at a time, "
                f"{exp.load.repeats} interleaved round(s)",
                "baselines_on": list(self.placement.server_cpus),
                # the servers whose configs/<server>/ this run rendered, with their local ports
                "server_ports": {
                    name: dict(ports) for name, ports in self.configs.placement.ports.items()
                },
            },
            notes=self.notes,
        )
        meta.seeds.update(
            {
                "weights_v1": seed_for_version(exp.seed, 1),
                "weights_v2": seed_for_version(exp.seed, 2),
            }
        )
        self.store.write_meta(meta)
        # a server with no target is no column of this run's report
        wanted = {a.name for a in self.servers}
        friction.packaging(self.run_dir, self.export_records, wanted)
        friction.configuration(self.run_dir, self.configs, wanted)

    # ---- observability --------------------------------------------------------------------
    def start_observability(self) -> None:
        gm.enable_multiprocess(self.run_dir / "tmp" / "prom-multiproc")
        if not self.want_prometheus:
            return
        reason = prom_mod.availability()
        if reason:
            self.notes.append(f"Prometheus not started: {reason}")
            return
        gen_port, exp_port = free_ports(2)
        self._http.append(gm.start_exposition(gen_port))
        self._http.append(ProcessExporter(self.exporter_pids).serve(exp_port))
        # one job per server this run starts (its Wire's metrics port and path)
        metrics_urls = {a.name: self.configs_url(a.name) for a in self.servers}
        cfg = local_scrape_config(
            run_id=self.run_id,
            metrics_urls=metrics_urls,
            generator_port=gen_port,
            process_exporter_port=exp_port,
        )
        self.prom = prom_mod.LocalPrometheus(
            self.run_dir, cfg, cpus=self.placement.generator_cpus if self.placement.pinned else None
        )
        self.prom.start()
        self.t_start = time.time()

    def exporter_pids(self) -> dict[str, int]:
        """Root pid per running server, looked up at each scrape: a restarted server (or a new
        container) is followed."""
        out = {}
        for name, server in list(self.live_servers.items()):
            try:
                pid = server.measured_pid()
            except ServerFailed:
                pid = None
            if pid is not None:
                out[name] = pid
        return out

    def _record_server_provenance(self, server: LocalServer) -> None:
        adapter = registry.get(server.name)
        prov = adapter.provenance(server)
        if prov is None:
            return
        self.server_provenance[server.name] = prov
        for note in adapter.run_notes(prov):
            if note not in self.notes:
                self.notes.append(note)

    def configs_url(self, server: str) -> str:
        """The URL Prometheus scrapes for ``server`` (its Wire's metrics port and path)."""
        wire = registry.get(server).wire
        assert wire is not None, f"{server} is an in-process baseline"
        return (
            f"http://127.0.0.1:{self.configs.placement.port(server, 'metrics')}{wire.metrics_path}"
        )

    def stop_observability(self) -> None:
        if self.prom is not None:
            try:
                time.sleep(3)  # one more scrape + rule evaluation
                self.prom.store_series(self.t_start, time.time(), run=self.run_id)
            except Exception as err:  # the stored steps matter more than the series
                self.notes.append(f"Prometheus series not stored: {err}")
            finally:
                self.prom.stop()
        for srv in self._http:
            srv.shutdown()

    # ---- load -----------------------------------------------------------------------------
    def _run_target(self, target: Target, address: str, **kw: Any) -> None:
        def done(r: StepResult) -> None:
            verdict = "valid" if r.valid else f"INVALID ({r.invalid_reason})"
            if r.disrupted:
                verdict += f", DISRUPTED ({r.disrupted})"
            if not r.steady:
                verdict += f", not steady ({r.unsteady_reason})"
            p50 = r.latency_ms.p50
            _log(
                f"  step {r.step_id}: {r.throughput_rps:.1f} req/s, p50 "
                f"{p50 if p50 is None else round(p50, 2)} ms, errors {r.transport_error_count}, "
                f"wrong {r.wrong_answers}, {r.stop_reason}, {verdict}"
            )
            self.advance(r.target)

        results = run_target(
            self.exp,
            target,
            address,
            self.run_dir,
            run_id=self.run_id,
            start_index=self.index,
            on_result=done,
            payloads_path=str(self.payloads_path),
            **kw,
        )
        self.index += len(results)
        self.results += results

    def _client_factory(self, target: Target, address: str) -> Any:
        return lambda: make_client(target, address, self.payloads, self.exp.load.request_timeout_s)

    def bring_up(
        self, name: str, targets: list[Target], index: int = 0, keep: bool = True
    ) -> LocalServer | None:
        """Start one server pinned to the server CPUs and take its start-up friction (``index``:
        which start-up of this server); None when it cannot run (its targets are marked
        unavailable with the reason). ``keep``: the server is the one the load rounds use
        (availability, provenance and resource sampling); otherwise the caller stops it."""
        cls = registry.get(name).launcher()
        reason = cls.availability()
        if reason:
            self._mark_unavailable(name, targets, reason, index)
            return None
        cpus = self.placement.server_cpus if self.placement.pinned else None
        server = cls(
            self.configs,
            self.config_dirs[name],
            self.run_dir,
            self.exp.model,
            cpus=cpus,
            memory_mib=self.exp.resources.memory_mib,
        )
        try:
            _log(f"starting {name}" + (f" (start-up {index + 1})" if index or not keep else ""))
            server.start()
            ready_s = server.wait_ready(timeout_s=180)
            first_ok = friction.first_correct_inference(
                self._client_factory(targets[0], server.address(targets[0].protocol))
            )
            friction.cold_start(self.run_dir, server, ready_s, first_ok, index)
            _log(f"{name} ready in {ready_s:.1f} s")
            friction.idle_resources(self.run_dir, server, index)
            if not keep:
                return server
            self._record_server_provenance(server)
            assert server.process is not None
            # The server's own processes (Docker: the container's, not the `docker run` client's)
            # feed the process exporter, peak RSS and the generator's "server saturated" check.
            root = server.measured_pid()
            if root is None:
                raise ServerFailed(f"{name}: no server process to measure after it was ready")
            self.live_servers[name] = server
            for target in targets:
                self.store.append_target(
                    TargetAvailability(
                        target=target.name, available=True, address=server.address(target.protocol)
                    )
                )
            self._samplers[name] = probes.ResourceSampler(root).start()
            return server
        except (ServerFailed, ServerUnavailable, TimeoutError) as err:
            _log(f"{name} failed: {err}")
            self._mark_unavailable(
                name, [t for t in targets if not self._measured(t)], str(err).splitlines()[0], index
            )
            server.stop()
            self.live_servers.pop(name, None)
            return None

    def bring_up_all(
        self, groups: dict[str, list[Target]]
    ) -> list[tuple[LocalServer, list[Target]]]:
        """``startup_samples`` start-up rounds in rotated order (friction.startup_order); within a
        round each server starts while the ones before it idle, and a round's servers are stopped
        before the next round, except the last round's, which stay up for the load (returned in
        ``groups`` order). A server that fails once is out of the later rounds."""
        rounds = friction.startup_order(list(groups), self.startup_samples)
        failed: set[str] = set()
        started: list[LocalServer] = []
        try:
            for k, order in enumerate(rounds):
                last = k == len(rounds) - 1
                if len(rounds) > 1:
                    _log(f"start-up round {k + 1}/{len(rounds)}: {' '.join(order)}")
                for name in order:
                    if name in failed:
                        continue
                    server = self.bring_up(name, groups[name], index=k, keep=last)
                    if server is None:
                        failed.add(name)
                    elif not last:
                        started.append(server)
                while started:
                    started.pop().stop()
        finally:
            for server in started:
                server.stop()
        return [(self.live_servers[n], groups[n]) for n in groups if n in self.live_servers]

    def run_rounds(self, groups: list[tuple[LocalServer | None, list[Target]]]) -> None:
        """``load.repeats`` rounds; each round runs every target once per load level, in a
        counterbalanced order (A B C, then C B A, ...), so slow drift of a shared machine hits
        every target of a comparison alike. Servers stay up between rounds; a server that died
        is skipped."""
        gen = self.placement.generator_cpus if self.placement.pinned else None
        base_cpus = self.placement.server_cpus if self.placement.pinned else None
        repeats = self.exp.load.repeats

        # Closed / open loop: within a round, one load level at a time across the targets
        # (A@c1 B@c1 … A@c4 B@c4 …), so the two steps of a pair are as close in time as possible.
        # A rate sweep stops per target at its first failing rate: it runs whole, target by target.
        levels: list[list[tuple[str, float]] | None] = (
            [None]
            if self.exp.load.profile is LoadProfile.rate_sweep
            else [[p] for p in plan_steps(self.exp.load)]
        )
        order = interleaved_order(groups)  # same-protocol pairs side by side
        for r in range(repeats):
            if repeats > 1:
                _log(f"round {r + 1}/{repeats}")
            # counterbalanced (A B C, C B A, A B C …): a drift that is linear within a round
            # favours no target on average, instead of always the one measured first
            this_round = order if r % 2 == 0 else order[::-1]
            if not baseline_round(self.exp.load, r):
                this_round = [(s, t) for s, t in this_round if s is not None]
            for params in levels:
                for server, target in this_round:
                    if server is None:  # in-process baseline
                        artifact = self._baseline_artifact(target)
                        if r == 0 and not self._announced(target):
                            self.store.append_target(
                                TargetAvailability(
                                    target=target.name, available=True, address=str(artifact)
                                )
                            )
                        own = self.exp.for_server(target.server)  # its tuning.per_server entry
                        _log(
                            f"baseline: {target.name} (in-process, {own.tuning.workers} instance(s) x "
                            f"{own.intra_op_threads} thread(s))"
                        )
                        self._run_target(
                            target,
                            str(artifact),
                            repeat=r,
                            cpus=base_cpus,
                            params=params,
                            client_options={
                                "intra_op_threads": own.intra_op_threads,
                                "workers": own.tuning.workers,
                            },
                        )
                        continue
                    assert server.process is not None
                    root = server.measured_pid() if server.process.alive() else None
                    if root is None:
                        continue  # reported once by wind_down
                    self.burn_ins.ensure(server, target)  # again after a restart
                    address = server.address(target.protocol)
                    _log(f"load: {target.name} at {address}")
                    self._run_target(
                        target,
                        address,
                        repeat=r,
                        cpus=gen,
                        params=params,
                        server_pids=[p.pid for p in probes.tree(root)],
                        server_metrics_url=self.configs_url(server.name),
                    )

    def _one_image_input(self) -> bool:
        """The model takes one [C, H, W] tensor (what the bad-payload probes build)."""
        try:
            return len(self.spec.input_shape) == 3
        except ModelCardError:  # several inputs
            return False

    def _announced(self, target: Target) -> bool:
        return any(t.target == target.name for t in self.store.read_targets())

    def wind_down(self, server: LocalServer, targets: list[Target]) -> None:
        """After every round: peak memory, then the friction that disturbs the server, in an
        order where no probe spoils a later one: native metrics and the small bad payloads, the
        model update and the kill under load (which ends with the server restarted), and last
        the body over the request-size limit (it may take the server down); then stop it."""
        name = server.name
        try:
            sampler = self._samplers.pop(name, None)
            if sampler is not None:
                sampler.stop()
                friction.peak_rss(self.run_dir, name, sampler, server.resource_source)
            assert server.process is not None
            if not server.process.alive():
                # It died under load: what it answered is on disk; the rest cannot be measured.
                why = f"{name} died during the load steps (exit {server.process.popen.returncode})"
                _log(why)
                self.notes.append(why)
                for metric in (
                    "metric_families",
                    "bad_payload_clear_errors",
                    "update_s",
                    "recovery_s",
                    "oversize_crashed",
                ):
                    append_friction(self.run_dir, unavailable(name, metric, why))
                return
            self._probe(
                server,
                "native metrics",
                lambda: friction.native_observability(self.run_dir, server),
            )
            if not self._one_image_input():
                # the bad-payload and oversize bodies are built on one [C, H, W] float tensor
                why = f"model {self.exp.model!r} ({self.spec.describe_inputs()}): the bad-payload "
                why += "probes build one [C, H, W] float32 tensor"
                for metric in ("bad_payload_clear_errors", "oversize_crashed"):
                    append_friction(self.run_dir, unavailable(name, metric, why))
                if self.friction_under_load:
                    self._disruptions(server, targets[0])
                return
            cases = self._probe(
                server,
                "bad payloads",
                lambda: friction.bad_payload_cases(server, self.exp.model, self.spec.input_shape),
            )
            try:
                if self.friction_under_load:
                    self._disruptions(server, targets[0])
                over = self._probe(
                    server,
                    "body over the request-size limit",
                    lambda: friction.oversize_body(
                        self.run_dir, server, self.exp.model, self.spec.input_shape
                    ),
                )
                cases.append(over)
                if over.outcome == "crashed":
                    finding = (
                        f"{name} crashed on a {over.sent_bytes} B request body (just over its "
                        f"request-size limit {over.limit_bytes or 'none'})"
                    )
                    _log(finding)
                    self.notes.append(finding)
            finally:
                friction.bad_payloads(self.run_dir, name, cases)
        except (ServerFailed, ServerUnavailable, TimeoutError) as err:
            _log(f"{name} failed: {err}")
            self.notes.append(f"{name} failed after the load steps: {str(err).splitlines()[0]}")
        finally:
            server.stop()
            self.live_servers.pop(name, None)

    def _probe(self, server: LocalServer, what: str, probe: Callable[[], T]) -> T:
        """Run one probe, logged with its wall time; a server found down before it (a previous
        probe took it down) is a finding, and it is restarted first so this probe measures it."""
        if not server.process or not server.process.alive():
            code = server.process.popen.returncode if server.process else None
            finding = f"{server.name} was down before the {what} probe (exit {code}): restarted"
            _log(finding)
            self.notes.append(finding)
            server.start()
            server.wait_ready(timeout_s=180)
        _log(f"{server.name}: {what}")
        t0 = time.monotonic()
        try:
            return probe()
        finally:
            _log(f"{server.name}: {what} took {time.monotonic() - t0:.1f} s")

    def run_all(self, targets: list[Target]) -> None:
        """Every available server up at once on the same server CPUs (idle while another is
        loaded), the rounds, then each server's disruptive friction and stop."""
        up: list[tuple[LocalServer, list[Target]]] = []
        try:
            by_server = {
                a.name: [t for t in targets if t.server == a.name] for a in registry.servers()
            }
            for name, why in self.no_artifact.items():
                missing = [t for t in targets if t.server == name]
                why = f"model {self.exp.model!r}: {why}"
                if missing and registry.get(name).is_inprocess:
                    for t in missing:
                        self.store.append_target(
                            TargetAvailability(target=t.name, available=False, reason=why)
                        )
                    self.notes.append(f"{name} unavailable: {why}")
                elif missing:
                    self._mark_unavailable(name, missing, why)
                by_server.pop(name, None)
            up = self.bring_up_all({name: group for name, group in by_server.items() if group})
            for server, group in up:  # before round 1
                self.burn_ins.ensure(server, group[0])
            groups: list[tuple[LocalServer | None, list[Target]]] = [*up]
            baselines = [t for t in targets if t.is_baseline and t.server not in self.no_artifact]
            if self.skip_unpaired_baselines:
                baselines = self._paired_baselines(
                    baselines,
                    wanted=[name for name, group in by_server.items() if group],
                    up=[server.name for server, _ in up],
                )
            if baselines:
                groups.append((None, baselines))
            running = [t for _, group in groups for t in group]
            self.resize_progress(
                len(plan_steps(self.exp.load)) * planned_steps(self.exp.load, running)
            )
            self.run_rounds(groups)
            while up:
                server, group = up.pop(0)
                self.wind_down(server, group)
        finally:
            # every server still up, those of a start-up round cut short included
            for server in list(self.live_servers.values()):
                server.stop()
            self.live_servers.clear()
            for sampler in self._samplers.values():
                sampler.stop()
            self._samplers.clear()

    def _paired_baselines(
        self, baselines: list[Target], wanted: list[str], up: list[str]
    ) -> list[Target]:
        """The baselines a comparison needs: one whose every server is unavailable costs a step
        per level and round and pairs with nothing; it is marked unavailable with the reason."""
        skip = unpaired_baselines(baselines, wanted, up, lambda s: registry.get(s).framework)
        for target in baselines:
            if target.name in skip:
                _log(f"baseline {target.name}: {skip[target.name]}")
                self.store.append_target(
                    TargetAvailability(
                        target=target.name, available=False, reason=skip[target.name]
                    )
                )
        return [t for t in baselines if t.name not in skip]

    def _measured(self, target: Target) -> bool:
        return any(r.target == target.name for r in self.results)

    def _disruptions(self, server: LocalServer, target: Target) -> None:
        make = self._client_factory(target, server.address(target.protocol))
        atol = self.exp.payload.atol
        adapter = registry.get(server.name)
        v1, v2 = self.expected.get("v1"), self.expected.get("v2")
        if v1 is not None and v2 is not None and np.allclose(v1, v2, rtol=0.0, atol=atol):
            # a model file has fixed weights: v2 (another seed) answers exactly like v1
            why = f"model {self.exp.model!r}: v2 answers like v1 (fixed weights from a file)"
            append_friction(self.run_dir, unavailable(server.name, "update_s", why))
            return
        update = adapter.update_action(server, self.art2, model_root(self.run_dir, server.name))
        self._probe(
            server,
            "model update v1 → v2 under load",
            lambda: friction.model_update(
                self.run_dir,
                server,
                make,
                self.expected,
                atol,
                update,
                how=adapter.update_how(server),
                event=self.exp.friction.event_load,
                steady_windows=self.exp.load.stability.windows,
            ),
        )

        def restart() -> None:
            server.start()

        self._probe(
            server,
            "kill under load and restart",
            lambda: friction.recovery(
                self.run_dir,
                server,
                make,
                self.expected,
                atol,
                restart,
                event=self.exp.friction.event_load,
                steady_windows=self.exp.load.stability.windows,
            ),
        )

    def _mark_unavailable(
        self, server: str, targets: list[Target], reason: str, index: int = 0
    ) -> None:
        """``index``: the start-up that failed (its start-up metrics get that index)."""
        _log(f"{server}: unavailable — {reason}")
        for t in targets:
            self.store.append_target(
                TargetAvailability(target=t.name, available=False, reason=reason)
            )
        for metric in FRICTION_METRICS_PER_SERVER:
            why = "cluster path only (kind)" if metric in CLUSTER_ONLY else reason
            append_friction(
                self.run_dir,
                unavailable(server, metric, why, index=index if metric in STARTUP_METRICS else 0),
            )
        self.notes.append(f"{server} unavailable: {reason}")

    def _baseline_artifact(self, target: Target) -> Path:
        # the artifact of the framework the baseline runs (TorchServe's exact bytes for PyTorch)
        return (
            self._torchscript_path()
            if registry.get(target.server).framework == "pytorch"
            else self.art1.savedmodel
        )

    def _torchscript_path(self) -> Path:
        """The TorchScript file from inside the .mar: the baseline runs TorchServe's exact bytes
        (the ONNX file for an ONNX source, run by ONNX Runtime)."""
        inner = "model.onnx" if self.spec.source.onnx else "model.pt"
        dest = self.run_dir / "models" / "pytorch" / inner
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self.art1.mar.is_file():
                with zipfile.ZipFile(self.art1.mar) as mar:
                    dest.write_bytes(mar.read(inner))
            else:  # no .mar (TorchServe cannot serve this source): the source artifact itself
                src = self.art1.onnx if self.spec.source.onnx else self.art1.torchscript
                shutil.copyfile(src, dest)
        return dest

    def finish_meta(self) -> None:
        meta = self.store.read_meta()
        meta.notes = self.notes + [n for n in self.burn_ins.notes() if n not in self.notes]
        meta.burn_in = self.burn_ins.records
        for name, prov in self.server_provenance.items():
            meta.versions[name] = registry.get(name).provenance_label(prov)
            meta.placement[f"{name}_runtime"] = prov
        if self.spec.source.onnx and any(t.server == "pytorch" for t in self.exp.targets):
            from servecmp.models.onnx_source import runtime_label

            # the `pytorch` baseline of an ONNX card runs ONNX Runtime, not PyTorch
            meta.versions["pytorch"] = runtime_label()
        self.store.write_meta(meta)


def run_experiment(
    exp: Experiment,
    *,
    experiment_path: Path | None = None,
    runs_root: Path = Path("runs"),
    artifacts_root: Path = Path("build/models"),
    quick: bool = False,
    skip_unpaired_baselines: bool | None = None,
    only: list[str] | None = None,
    prometheus: bool = True,
    report: bool = True,
    friction_under_load: bool = True,
) -> Path:
    install_handlers()
    if quick:
        exp = quick_profile(exp)
    targets = [t for t in exp.targets if not only or t.name in only]
    if only and not targets:
        known = ", ".join(t.name for t in exp.targets)
        raise SystemExit(f"--target: none of {only} is in the experiment; its targets: {known}")
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{exp.name}"
    # Absolute paths: servers run with their log directory as cwd.
    run_dir = runs_root.resolve() / run_id
    run = LocalRun(
        exp,
        run_dir=run_dir,
        artifacts_root=artifacts_root.resolve(),
        prometheus=prometheus,
        friction_under_load=friction_under_load,
        startup_samples=exp.friction.startups,
        targets=targets,
        # what --quick does unless told (scripts/bench_demo.py runs --quick designs pre-made)
        skip_unpaired_baselines=quick
        if skip_unpaired_baselines is None
        else skip_unpaired_baselines,
    )
    _log(f"run {run_id}: {len(targets)} target(s); {run.placement.note}")
    if experiment_path is not None and experiment_path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(experiment_path, run_dir / "experiment.source.yaml")
    gen_cpus = run.placement.generator_cpus if run.placement.pinned else None

    # Everything started from here on dies with this process, even on kill -9 (watchdog.py).
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    watchdog.start(run_dir / "logs" / "watchdog.log")
    with (
        _progress(len(plan_steps(exp.load)) * planned_steps(exp.load, targets)) as bar,
        contextlib.ExitStack() as pin,
    ):
        pin.callback(watchdog.stop)
        run.advance, run.resize_progress = bar.advance, bar.resize
        run.prepare()  # unpinned, so the provenance records every CPU the machine offers
        pin.enter_context(cpu_plan.pinned(gen_cpus))
        try:
            run.start_observability()
            run.run_all(targets)
        finally:
            run.stop_observability()
            run.finish_meta()

    print_summary(run_dir)
    if report:
        try:
            from servecmp.report.build import build_report

            out = build_report(run_dir)
            _log(f"report: {out.html}")
            _log(f"report (Markdown): {out.markdown}")
        except ImportError as err:
            _log(f"report not built: {err}")
    return run_dir
