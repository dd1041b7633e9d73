#!/usr/bin/env python
"""Benchmark of the load harness itself (not a test): how much load can it generate, and how much
latency does it add?

1. Generator capacity against trivial local endpoints (each a separate process pinned to its
   own CPU when >= 2 are usable; the generator gets another):
   - REST: an asyncio echo server speaking TorchServe's ``POST /predictions/<m>`` raw-float32
     form, driven by the real ``TorchServeRestClient`` (target ``torchserve-rest-raw``);
   - gRPC: a grpc.aio echo ``InferenceAPIsService.Predictions`` driven by the real
     ``TorchServeGrpcClient`` (target ``torchserve-grpc-bytes``).
   Each is one engine step (closed loop, ``--concurrency`` users) run exactly as a real step.
   Goals on 2 cores: >= 5,000 REST req/s, >= 2,000 gRPC req/s.
2. Added latency at concurrency 1 against one endpoint (default: the trivial REST endpoint, or
   ``--address`` with ``--payloads`` for a real TorchServe REST target): the harness's p50 vs
   ``wrk -c1`` (``/usr/bin/wrk``; ``apt-get install wrk``) on the same body, and the ratio.

    .venv/bin/python scripts/bench_harness.py [--seconds 3] [--skip-grpc] [--address 127.0.0.1:8080 --payloads runs/x]

Numbers on a shared machine are indicative only: rerun and report ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ECHO_MODEL = "echo"


# ---- trivial endpoints (run as child processes of this script) ----------------------------------
def serve_rest() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                head_end = self.buf.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                m = re.search(rb"(?i)content-length:\s*(\d+)", self.buf[:head_end])
                total = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(self.buf) < total:
                    return
                body, self.buf = self.buf[head_end + 4 : total], self.buf[total:]
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"  # type: ignore[attr-defined]
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_grpc() -> None:
    import grpc

    from servecmp.loadtests.clients import torchserve_protos

    pb2, pb2_grpc = torchserve_protos.load()

    class Echo(pb2_grpc.InferenceAPIsServiceServicer):
        async def Predictions(self, request, context):
            return pb2.PredictionResponse(prediction=request.input["data"])

    async def main() -> None:
        server = grpc.aio.server()
        pb2_grpc.add_InferenceAPIsServiceServicer_to_server(Echo(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"PORT {port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def start_server(kind: str, cpus: list[int] | None) -> tuple[subprocess.Popen, str]:
    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = subprocess.Popen([sys.executable, __file__, f"serve-{kind}"], stdout=subprocess.PIPE, text=True,
                            preexec_fn=pin)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"trivial {kind} server did not start: {line!r}")
    return proc, f"127.0.0.1:{int(line.split()[1])}"


# ---- harness steps --------------------------------------------------------------------------
def echo_payloads(run_dir: Path, shape: tuple[int, int, int]) -> str:
    from servecmp.loadtests.payloads import PayloadSet, seeded_inputs

    inputs = seeded_inputs(7, 8, 1, shape)
    ps = PayloadSet(model=ECHO_MODEL, seed=7, inputs=inputs, expected=inputs.reshape(8, 1, -1))
    return str(ps.save(run_dir))


def harness_step(run_dir: Path, name: str, target, address: str, payloads: str, concurrency: int,
                 seconds: float, cpus: list[int] | None):
    from servecmp.experiment import Load, Stability
    from servecmp.loadtests.engine.runner import run_step
    from servecmp.loadtests.engine.spec import StepSpec

    load = Load(warmup_s=1.0, request_timeout_s=5.0, max_requests_per_step=5_000_000,
                stability=Stability(window_s=seconds, windows=2, max_windows=3, tolerance=0.10))
    spec = StepSpec(run_id="bench", step_id=name, target=target, address=address, sweep="closed_loop",
                    mode="closed_loop", concurrency=concurrency, load=load, payloads_path=payloads)
    return run_step(spec, run_dir, cpus=cpus)


def wrk_p50(url: str, body_path: Path, content_type: str, seconds: float, cpus: list[int] | None) -> float:
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    if not Path(wrk).exists():
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    lua = body_path.with_suffix(".lua")
    lua.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    out = subprocess.run([wrk, "-t1", "-c1", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(lua), url],
                         capture_output=True, text=True, timeout=seconds + 30, preexec_fn=pin).stdout
    m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def with_real_torchserve(args: argparse.Namespace) -> int:
    """Start TorchServe via the local runtime (server on the last CPU), write its payloads, then
    rerun this benchmark's wrk comparison against it (capacity runs skipped: a model is not trivial)."""
    from servecmp.deploy.local.standalone import start_torchserve
    from servecmp.loadtests.payloads import PayloadSet
    from servecmp.models.__main__ import export_command
    from servecmp.models.export import artifacts
    from servecmp.models.registry import DEFAULT_SEED, get_model

    root = Path("build/models") / f"seed-{DEFAULT_SEED}"
    if not artifacts(args.torchserve, root).export_json.is_file():
        export_command(root, [args.torchserve], seed=DEFAULT_SEED, versions=(1,))
    usable = sorted(os.sched_getaffinity(0))
    cpus = (usable[-1],) if len(usable) >= 2 else None
    with tempfile.TemporaryDirectory(prefix="servecmp-bench-ts-") as tmp:
        work = Path(tmp)
        server = start_torchserve(args.torchserve, work, root, cpus=cpus)
        try:
            ps = PayloadSet.build(get_model(args.torchserve), DEFAULT_SEED, 1, 16, weights_seed=DEFAULT_SEED)
            ps.save(work)
            argv = [sys.executable, __file__, "--seconds", str(args.seconds), "--skip-grpc",
                    "--concurrency", "1", "--address", server.endpoints.rest, "--payloads", str(work),
                    "--target", args.target]
            return subprocess.run(argv, check=False).returncode
        finally:
            server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="measurement window length")
    ap.add_argument("--concurrency", type=int, default=32, help="closed-loop users for the capacity runs")
    ap.add_argument("--shape", default="1,2,2", help="C,H,W of the echoed float32 payload")
    ap.add_argument("--skip-grpc", action="store_true")
    ap.add_argument("--address", help="real TorchServe REST endpoint (127.0.0.1:port) for the wrk comparison")
    ap.add_argument("--payloads", help="PayloadSet .npz / run dir for --address")
    ap.add_argument("--target", default="torchserve-rest-raw", choices=["torchserve-rest-raw", "torchserve-rest-json"])
    ap.add_argument("--torchserve", metavar="MODEL",
                    help="start a REAL local TorchServe serving MODEL (exported into build/models) "
                         "and compare the harness with wrk against it")
    args = ap.parse_args()
    if args.torchserve:
        return with_real_torchserve(args)

    from rich.console import Console
    from rich.table import Table

    from servecmp.experiment import Target
    from servecmp.loadtests.engine.spec import check_address

    console = Console(width=130)
    usable = sorted(os.sched_getaffinity(0))
    server_cpus, gen_cpus = ([usable[0]], usable[1:2]) if len(usable) >= 2 else (None, None)
    console.print(f"CPUs usable: {usable}; trivial servers on {server_cpus}, generator (+wrk) on {gen_cpus}. "
                  "[yellow]Shared machine: figures are indicative only.[/yellow]")
    shape = tuple(int(x) for x in args.shape.split(","))
    rest_t = Target(server="torchserve", protocol="rest", encoding="raw")
    grpc_t = Target(server="torchserve", protocol="grpc")
    table = Table(title="generator capacity (closed loop, trivial echo endpoints)")
    for col in ("target", "users", "req/s", "goal", "gen CPU", "p50 ms", "p99 ms", "errors", "stop"):
        table.add_column(col)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="servecmp-bench-") as tmp:
        run = Path(tmp)
        payloads = echo_payloads(run, shape)  # type: ignore[arg-type]
        try:
            rest_proc, rest_addr = start_server("rest", server_cpus)
            procs.append(rest_proc)
            cases = [("rest", rest_t, rest_addr, 5000)]
            if not args.skip_grpc:
                grpc_proc, grpc_addr = start_server("grpc", server_cpus)
                procs.append(grpc_proc)
                cases.append(("grpc", grpc_t, grpc_addr, 2000))
            for kind, target, addr, goal in cases:
                with console.status(f"capacity: {target.name} ..."):
                    r = harness_step(run, f"capacity-{kind}", target, addr, payloads, args.concurrency, args.seconds, gen_cpus)
                errs = r.wrong_answers + sum(r.transport_errors.values())
                ok = "[green]ok[/green]" if r.throughput_rps >= goal else "[red]below[/red]"
                table.add_row(target.name, str(args.concurrency), f"{r.throughput_rps:,.0f}", f">= {goal:,} {ok}",
                              f"{r.generator.cpu_fraction:.0%}" if r.generator else "?",
                              f"{r.latency_ms.p50 or 0:.2f}", f"{r.latency_ms.p99 or 0:.2f}", str(errs), r.stop_reason)
                if r.error:
                    console.print(f"[red]{target.name}: {r.error[:500]}[/red]")
            console.print(table)

            # ---- added latency at concurrency 1: harness vs wrk ---------------------------
            if args.address:
                check_address(args.address)
                target = Target(server="torchserve", protocol="rest", encoding=args.target.rsplit("-", 1)[1])
                addr, pl, label = args.address, args.payloads, f"{target.name} at {args.address}"
                if not pl:
                    ap.error("--address needs --payloads (the run's PayloadSet)")
                from servecmp.loadtests.payloads import PayloadSet

                ps = PayloadSet.load(pl)
                model = ps.model
            else:
                target, addr, pl, label = rest_t, rest_addr, payloads, f"trivial echo {rest_addr}"
                from servecmp.loadtests.payloads import PayloadSet

                ps = PayloadSet.load(pl)
                model = ECHO_MODEL
            body = run / "body.bin"
            body.write_bytes(ps.body(target.effective_encoding, 0))
            ctype = "application/json" if target.effective_encoding.value == "json" else "application/octet-stream"
            with console.status(f"added latency at c=1: {label} ..."):
                r1 = harness_step(run, "c1", target, addr, pl, 1, args.seconds, gen_cpus)
                wrk_ms = wrk_p50(f"http://{addr}/predictions/{model}", body, ctype, args.seconds * 2, gen_cpus)
            h = r1.latency_ms.p50 or float("nan")
            lat = Table(title=f"added latency at concurrency 1 ({label})")
            for col in ("harness p50 ms", "wrk p50 ms", "ratio harness/wrk", "harness req/s", "errors"):
                lat.add_column(col)
            lat.add_row(f"{h:.3f}", f"{wrk_ms:.3f}", f"{h / wrk_ms:.2f}", f"{r1.throughput_rps:,.0f}",
                        str(r1.wrong_answers + sum(r1.transport_errors.values())))
            console.print(lat)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-rest":
        serve_rest()
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-grpc":
        serve_grpc()
    else:
        sys.exit(main())
