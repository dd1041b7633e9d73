#!/usr/bin/env python
"""Benchmark of the load harness itself (not a test): how much load can it generate, and how much
latency does it add?

1. Generator capacity against trivial local endpoints (each a separate process pinned to its
   own CPU when >= 2 are usable; the generator gets another):
   - REST: an asyncio echo server speaking TorchServe's ``POST /predictions/<m>`` raw-float32
     form, driven by the real ``TorchServeRestClient`` (target ``torchserve-rest-raw``);
   - gRPC: a grpc.aio echo ``InferenceAPIsService.Predictions`` driven by the real
     ``TorchServeGrpcClient`` (target ``torchserve-grpc-bytes``).
   Each is one engine step (closed loop, ``--concurrency`` users) run exactly as a real step,
   alternated with stock Locust on the same endpoint, same users, same CPU (FastHttpUser for
   REST; a plain gRPC user as in Locust's gRPC example): ours must reach >= 0.8x of stock Locust.
2. Added latency at concurrency 1 against one endpoint (default: the trivial REST endpoint, or
   ``--address`` with ``--payloads`` for a real TorchServe REST target): ``--rounds`` rounds
   (default 5), each one harness step and one ``wrk -c1`` run (``/usr/bin/wrk``; ``apt-get install
   wrk``) on the same body, the order alternating (H W, W H, H W ...) so the server's drift hits
   both tools. Printed: every round's p50s and ratio, the median ratio and its spread (min-max);
   goal: median harness p50 / wrk p50 <= 1.10.

    .venv/bin/python scripts/bench_harness.py [--seconds 3] [--rounds 5] [--capacity-rounds 3] [--skip-grpc] [--address 127.0.0.1:8080 --payloads runs/x]
    .venv/bin/python scripts/bench_harness.py --torchserve resnet --target torchserve-rest-json

Numbers on a shared machine are indicative only: rerun and report ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import shutil
import statistics
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
                self.t.write(  # type: ignore[attr-defined]
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=1024)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def serve_grpc() -> None:
    import grpc

    from servecmp.load.clients import protos

    pb2, pb2_grpc = protos.load("torchserve")

    class Echo(pb2_grpc.InferenceAPIsServiceServicer):  # type: ignore[name-defined]  # run-time stubs
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

    proc = subprocess.Popen(
        [sys.executable, __file__, f"serve-{kind}"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=pin,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"trivial {kind} server did not start: {line!r}")
    return proc, f"127.0.0.1:{int(line.split()[1])}"


# ---- harness steps --------------------------------------------------------------------------
def echo_payloads(run_dir: Path, shape: tuple[int, int, int]) -> str:
    from servecmp.load.payloads import PayloadSet, seeded_inputs

    inputs = seeded_inputs(7, 8, 1, shape)
    ps = PayloadSet(model=ECHO_MODEL, seed=7, inputs=inputs, expected=inputs.reshape(8, 1, -1))
    return str(ps.save(run_dir))


def harness_step(
    run_dir: Path,
    name: str,
    target,
    address: str,
    payloads: str,
    concurrency: int,
    seconds: float,
    cpus: list[int] | None,
):
    from servecmp.experiment import Load, Stability
    from servecmp.load.engine.runner import run_step
    from servecmp.load.engine.spec import StepSpec

    load = Load(
        warmup_s=1.0,
        request_timeout_s=5.0,
        max_requests_per_step=5_000_000,
        stability=Stability(window_s=seconds, windows=2, max_windows=3, tolerance=0.10),
    )
    spec = StepSpec(
        run_id="bench",
        step_id=name,
        target=target,
        address=address,
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=concurrency,
        load=load,
        payloads_path=payloads,
    )
    return run_step(spec, run_dir, cpus=cpus)


def wrk_p50(
    url: str, body_path: Path, content_type: str, seconds: float, cpus: list[int] | None
) -> float:
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

    out = subprocess.run(
        [wrk, "-t1", "-c1", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(lua), url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=pin,
    ).stdout
    m = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m:
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


# ---- stock Locust on the same endpoint (the reference for generator capacity) ----------------
STOCK_REST = """
import os
from locust import FastHttpUser, constant, task

BODY = open(os.environ["BENCH_BODY"], "rb").read()
PATH = os.environ["BENCH_PATH"]
HEADERS = {"Content-Type": "application/octet-stream"}


class StockFastHttp(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self):
        self.client.post(PATH, data=BODY, headers=HEADERS)
"""

# A plain gRPC user after Locust's own example (locustio/locust examples/grpc/grpc_user.py:
# grpc.experimental.gevent.init_gevent(), grpc.insecure_channel, one request event per call),
# minus its grpc-interceptor layer and ByteSize() (not installed here; leaner, so the comparison
# is stricter). No answer check, no HDR: the bare minimum.
STOCK_GRPC = """
import os
import time

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, constant, task

grpc_gevent.init_gevent()
from servecmp.load.clients import protos

pb2, pb2_grpc = protos.load("torchserve")
DATA = open(os.environ["BENCH_BODY"], "rb").read()


class StockGrpc(User):
    wait_time = constant(0)

    def on_start(self):
        self.channel = grpc.insecure_channel(self.host)
        self.stub = pb2_grpc.InferenceAPIsServiceStub(self.channel)
        self.request = pb2.PredictionsRequest(model_name=os.environ["BENCH_MODEL"], input={"data": DATA})

    @task
    def predict(self):
        start = time.perf_counter()
        exc = None
        length = 0
        try:
            length = len(self.stub.Predictions(self.request).prediction)
        except grpc.RpcError as err:
            exc = err
        self.environment.events.request.fire(
            request_type="grpc", name="Predictions", response_time=(time.perf_counter() - start) * 1000,
            response_length=length, exception=exc, context={})

    def on_stop(self):
        self.channel.close()
"""


def stock_locust_rps(
    kind: str,
    address: str,
    body: Path,
    users: int,
    seconds: float,
    cpus: list[int] | None,
    work: Path,
) -> tuple[float, int]:
    """(req/s, failures) of stock Locust, one process, ``users`` users, after they all spawned."""
    lf = work / f"stock_{kind}.py"
    lf.write_text(STOCK_REST if kind == "rest" else STOCK_GRPC)
    prefix = work / f"stock_{kind}"
    host = f"http://{address}" if kind == "rest" else address
    env = dict(
        os.environ,
        BENCH_BODY=str(body),
        BENCH_PATH=f"/predictions/{ECHO_MODEL}",
        BENCH_MODEL=ECHO_MODEL,
    )

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    locust = Path(sys.executable).with_name("locust")
    argv = [
        str(locust),
        "-f",
        str(lf),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users * 100),
        "-t",
        f"{max(2, round(seconds))}s",
        "--host",
        host,
        "--reset-stats",
        "--only-summary",
        "--csv",
        str(prefix),
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "2",
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 60, preexec_fn=pin
    )
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if not stats.is_file():
        raise RuntimeError(
            f"stock Locust ({kind}) wrote no stats (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    with stats.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return float(row["Requests/s"]), int(row["Failure Count"])
    raise RuntimeError(f"no Aggregated row in {stats}")


# ---- added latency at c=1: alternating rounds -------------------------------------------------
def latency_rounds(
    run: Path,
    target,
    addr: str,
    payloads: str,
    model: str,
    rounds: int,
    seconds: float,
    cpus: list[int] | None,
    console,
) -> list[tuple[float, float]]:
    """``rounds`` x (harness p50, wrk p50) in ms; the order alternates each round."""
    from servecmp.load.payloads import PayloadSet

    ps = PayloadSet.load(payloads)
    body = run / "body.bin"
    body.write_bytes(ps.body(target.effective_encoding, 0))
    ctype = (
        "application/json"
        if target.effective_encoding.value == "json"
        else "application/octet-stream"
    )
    url = f"http://{addr}/predictions/{model}"
    with console.status("warm-up (not reported): wrk for 2 s ..."):
        wrk_p50(url, body, ctype, 2, cpus)  # both tools then meet a warm server (JIT, caches)
    out: list[tuple[float, float]] = []
    for r in range(rounds):
        got: dict[str, float] = {}
        order = ("harness", "wrk") if r % 2 == 0 else ("wrk", "harness")
        for tool in order:
            with console.status(f"round {r + 1}/{rounds}: {tool} at c=1 ..."):
                if tool == "harness":
                    res = harness_step(run, f"c1-r{r}", target, addr, payloads, 1, seconds, cpus)
                    errs = res.wrong_answers + sum(res.transport_errors.values())
                    if res.latency_ms.p50 is None or errs:
                        raise RuntimeError(
                            f"harness round {r + 1}: p50 {res.latency_ms.p50}, {errs} errors; {res.error or ''}"
                        )
                    got[tool] = res.latency_ms.p50
                else:
                    got[tool] = wrk_p50(url, body, ctype, seconds * 2, cpus)
        out.append((got["harness"], got["wrk"]))
    return out


def latency_table(label: str, pairs: list[tuple[float, float]], goal: float | None):
    from rich.table import Table

    ratios = [h / w for h, w in pairs]
    med = statistics.median(ratios)
    t = Table(title=f"added latency at concurrency 1, {label}: {len(pairs)} alternating rounds")
    for col in ("round", "order", "harness p50 ms", "wrk p50 ms", "ratio harness/wrk", "added ms"):
        t.add_column(col, justify="right")
    for i, (h, w) in enumerate(pairs):
        t.add_row(
            str(i + 1),
            "H,W" if i % 2 == 0 else "W,H",
            f"{h:.3f}",
            f"{w:.3f}",
            f"{h / w:.3f}",
            f"{h - w:+.3f}",
        )
    if (
        goal is None
    ):  # a trivial endpoint: the ratio of two tiny numbers; the added ms is the figure
        verdict = "(no ratio goal on a trivial endpoint: the added ms is what the harness costs per request)"
    else:
        verdict = f"goal <= {goal:.2f} " + (
            "[green]ok[/green]" if med <= goal else "[red]above goal[/red]"
        )
    t.caption = (
        f"median ratio {med:.3f} (spread {min(ratios):.3f}-{max(ratios):.3f}; "
        f"median added {statistics.median(h - w for h, w in pairs):+.3f} ms); {verdict}"
    )
    return t, med


def with_real_torchserve(args: argparse.Namespace) -> int:
    """Start TorchServe via the local runtime (server on the last CPU), write its payloads, then
    rerun this benchmark's wrk comparison against it (capacity runs skipped: a model is not trivial)."""
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.commands import export_command
    from servecmp.models.export import artifacts
    from servecmp.models.registry import DEFAULT_SEED, get_model
    from servecmp.run.standalone import start_server

    root = Path("build/models") / f"seed-{DEFAULT_SEED}"
    if not artifacts(args.torchserve, root).export_json.is_file():
        export_command(root, [args.torchserve], seed=DEFAULT_SEED, versions=(1,))
    usable = sorted(os.sched_getaffinity(0))
    cpus = (usable[-1],) if len(usable) >= 2 else None
    with tempfile.TemporaryDirectory(prefix="servecmp-bench-ts-") as tmp:
        work = Path(tmp)
        server = start_server("torchserve", args.torchserve, work, root, cpus=cpus)
        try:
            ps = PayloadSet.build(
                get_model(args.torchserve), DEFAULT_SEED, 1, 16, weights_seed=DEFAULT_SEED
            )
            ps.save(work)
            argv = [
                sys.executable,
                __file__,
                "--seconds",
                str(args.seconds),
                "--rounds",
                str(args.rounds),
                "--skip-capacity",
                "--address",
                server.endpoints.rest,
                "--payloads",
                str(work),
                "--target",
                args.target,
            ]
            return subprocess.run(argv, check=False).returncode
        finally:
            server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=3.0, help="measurement window length")
    ap.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="alternating rounds, harness/wrk and ours/stock (>= 3)",
    )
    ap.add_argument(
        "--capacity-rounds", type=int, default=3, help="alternating ours/stock Locust rounds (>= 3)"
    )
    ap.add_argument(
        "--concurrency", type=int, default=32, help="closed-loop users for the capacity runs"
    )
    ap.add_argument("--shape", default="1,2,2", help="C,H,W of the echoed float32 payload")
    ap.add_argument("--skip-grpc", action="store_true")
    ap.add_argument("--skip-capacity", action="store_true", help="only the added-latency rounds")
    ap.add_argument(
        "--address", help="real TorchServe REST endpoint (127.0.0.1:port) for the wrk comparison"
    )
    ap.add_argument("--payloads", help="PayloadSet .npz / run dir for --address")
    ap.add_argument(
        "--target",
        default="torchserve-rest-raw",
        choices=["torchserve-rest-raw", "torchserve-rest-json"],
    )
    ap.add_argument(
        "--torchserve",
        metavar="MODEL",
        help="start a REAL local TorchServe serving MODEL (exported into build/models) "
        "and compare the harness with wrk against it",
    )
    args = ap.parse_args()
    if args.rounds < 3 or args.capacity_rounds < 3:
        ap.error(
            "--rounds and --capacity-rounds must be >= 3 (a median and a spread need several alternating rounds)"
        )
    if args.address and not args.payloads:
        ap.error("--address needs --payloads (the run's PayloadSet)")
    if args.torchserve:
        return with_real_torchserve(args)

    from rich.console import Console
    from rich.table import Table

    from servecmp.experiment import Encoding, Protocol, Target
    from servecmp.load.engine.spec import check_address
    from servecmp.load.payloads import PayloadSet

    console = Console(width=140)
    usable = sorted(os.sched_getaffinity(0))
    server_cpus, gen_cpus = ([usable[0]], usable[1:2]) if len(usable) >= 2 else (None, None)
    console.print(
        f"CPUs usable: {usable}; trivial servers on {server_cpus}, generator (+wrk, +stock Locust) on "
        f"{gen_cpus}. [yellow]Shared machine: figures are indicative only.[/yellow]"
    )
    shape = tuple(int(x) for x in args.shape.split(","))
    rest_t = Target(server="torchserve", protocol=Protocol.rest, encoding=Encoding.raw)
    grpc_t = Target(server="torchserve", protocol=Protocol.grpc)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="servecmp-bench-") as tmp:
        run = Path(tmp)
        payloads = echo_payloads(run, shape)  # type: ignore[arg-type]
        echo_body = run / "echo.bin"
        echo_body.write_bytes(PayloadSet.load(payloads).body(rest_t.effective_encoding, 0))
        try:
            rest_proc, rest_addr = start_server("rest", server_cpus)
            procs.append(rest_proc)
            if not args.skip_capacity:
                table = Table(
                    title=f"generator capacity (closed loop, {args.concurrency} users, trivial echo endpoints, "
                    "ours and stock Locust alternating)"
                )
                for col in (
                    "target",
                    "ours req/s",
                    "stock req/s",
                    "ours/stock",
                    "goal",
                    "gen CPU",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                ):
                    table.add_column(col, justify="right", overflow="fold")
                cases = [("rest", rest_t, rest_addr, 5000)]
                if not args.skip_grpc:
                    grpc_proc, grpc_addr = start_server("grpc", server_cpus)
                    procs.append(grpc_proc)
                    cases.append(("grpc", grpc_t, grpc_addr, 2000))
                for kind, target, addr, goal in cases:
                    ours: list[float] = []
                    stock: list[float] = []
                    last = None
                    for r in range(
                        args.capacity_rounds
                    ):  # alternating order: ours,stock / stock,ours / ...
                        for who in ("ours", "stock") if r % 2 == 0 else ("stock", "ours"):
                            with console.status(
                                f"capacity round {r + 1}/{args.capacity_rounds}: {who} on {target.name} ..."
                            ):
                                if who == "ours":
                                    last = harness_step(
                                        run,
                                        f"capacity-{kind}-{r}",
                                        target,
                                        addr,
                                        payloads,
                                        args.concurrency,
                                        args.seconds,
                                        gen_cpus,
                                    )
                                    ours.append(last.throughput_rps)
                                    if last.error:
                                        console.print(
                                            f"[red]{target.name}: {last.error[:500]}[/red]"
                                        )
                                else:
                                    rps, _fails = stock_locust_rps(
                                        kind,
                                        addr,
                                        echo_body,
                                        args.concurrency,
                                        args.seconds * 2,
                                        gen_cpus,
                                        run,
                                    )
                                    stock.append(rps)
                    assert last is not None
                    ratios = [o / st for o, st in zip(ours, stock, strict=True)]
                    med = statistics.median(ratios)
                    errs = last.wrong_answers + sum(last.transport_errors.values())
                    ok = "[green]ok[/green]" if med >= 0.8 else "[red]below[/red]"
                    table.add_row(
                        target.name,
                        f"{statistics.median(ours):,.0f}",
                        f"{statistics.median(stock):,.0f}",
                        f"{med:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) {ok}",
                        f"ratio >= 0.8; >= {goal:,}/s",
                        f"{last.generator.cpu_fraction:.0%}" if last.generator else "?",
                        f"{last.latency_ms.p50 or 0:.2f}",
                        f"{last.latency_ms.p99 or 0:.2f}",
                        str(errs),
                    )
                console.print(table)
                console.print(
                    f"ours: engine steps (answers checked, HDR recorded); stock: stock Locust, one process, no "
                    f"answer check; {args.capacity_rounds} alternating rounds each; ours/stock: median of the per-round "
                    "ratios (min-max); req/s: medians; gen CPU/p50/p99/errors: our last round."
                )

            # ---- added latency at concurrency 1: harness vs wrk, alternating ----------------
            if args.address:
                check_address(args.address)
                target = Target(
                    server="torchserve",
                    protocol=Protocol.rest,
                    encoding=Encoding(args.target.rsplit("-", 1)[1]),
                )
                addr, pl, label = args.address, args.payloads, f"{target.name} at {args.address}"
                model = PayloadSet.load(pl).model
            else:
                target, addr, pl, label = rest_t, rest_addr, payloads, f"trivial echo {rest_addr}"
                model = ECHO_MODEL
            pairs = latency_rounds(
                run, target, addr, pl, model, args.rounds, args.seconds, gen_cpus, console
            )
            table, _ = latency_table(label, pairs, 1.10 if args.address else None)
            console.print(table)
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
