"""Test doubles for the load-engine tests (no tests here).

- An echo "TorchServe REST raw" endpoint: ``POST /predictions/<m>`` answers the request body
  after ``service_ms``, optionally one request at a time (``--serial``: a server with capacity
  1000/service_ms req/s), optionally dying abruptly (``os._exit``: no clean shutdown, like a
  SIGKILL) right after its N-th answer (``--die-after N``): a crash at a point fixed by the load,
  not by the clock. With an echo PayloadSet (expected logits = the inputs, flattened) the
  REAL ``TorchServeRestClient`` and ``call()`` drive it, so correctness checks pass.
- A busy in-process client (burns generator CPU) for the generator-bottleneck test.

Run the server: ``python tests/test_engine_doubles.py serve --service-ms 20 --serial``; it
prints ``PORT <n>`` once listening on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = (
    str(REPO / ".venv" / "bin" / "python")
    if (REPO / ".venv" / "bin" / "python").exists()
    else sys.executable
)


# ---- echo server ------------------------------------------------------------------------------
def serve(service_ms: float, serial: bool, die_after: int = 0) -> None:
    lock = threading.Lock()
    count_lock = threading.Lock()
    answered = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else Nagle + delayed ACK add ~40 ms per answer

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if serial:
                with lock:
                    time.sleep(service_ms / 1000.0)
            else:
                time.sleep(service_ms / 1000.0)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if die_after:
                with count_lock:
                    answered[0] += 1
                    if answered[0] >= die_after:
                        self.wfile.flush()
                        os._exit(0)

        def log_message(self, *a: object) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 512
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


def start_echo_server(
    service_ms: float, *, serial: bool = False, die_after: int = 0
) -> tuple[subprocess.Popen, str]:
    cmd = [PY, str(HERE / "test_engine_doubles.py"), "serve", "--service-ms", str(service_ms)]
    if serial:
        cmd.append("--serial")
    if die_after:
        cmd += ["--die-after", str(die_after)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"echo server did not start: {line!r}")
    return proc, f"127.0.0.1:{int(line.split()[1])}"


# ---- payloads ---------------------------------------------------------------------------------
def echo_payloads(n: int = 8, seed: int = 7):
    """A PayloadSet for the echo server: inputs [n, 1, 1, 2, 2]; expected = inputs flattened."""
    from servecmp.load.payloads import PayloadSet, seeded_inputs

    inputs = seeded_inputs(seed, n, 1, (1, 2, 2))
    return PayloadSet(model="echo", seed=seed, inputs=inputs, expected=inputs.reshape(n, 1, 4))


def save_echo_payloads(run_dir: Path) -> str:
    return str(echo_payloads().save(run_dir))


def child_env() -> dict[str, str]:
    """Environment for step processes that must import this module (client_factory)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
    return env


# ---- busy in-process client (generator-bound) -------------------------------------------------
def busy_client_maker(spec):
    """client_factory: an in-process 'target' that burns 2 ms of the generator's CPU per request
    (CPU time, not wall time: each request costs that much CPU however the machine is shared)."""
    from servecmp.load.clients.base import TargetClient

    payloads = echo_payloads()

    class BusyClient(TargetClient):
        def _exchange(self, index: int):
            end = time.process_time() + 0.002
            while time.process_time() < end:
                pass
            return self.payloads.expected[index], 16

    def new_client():
        return BusyClient(spec.target, "", payloads, 1.0)

    new_client.n_inputs = len(payloads)
    return new_client


# ---- a client whose construction blocks (a model load) ---------------------------------------
SLOW_START_S = 1.5


def slow_start_client_maker(spec):
    """client_factory: building the first client blocks the process for SLOW_START_S (like a
    SavedModel load: no greenlet runs meanwhile); each answer then takes ~2 ms."""
    from servecmp.load.clients.base import TargetClient

    payloads = echo_payloads()
    loaded: list[bool] = []

    class SlowStartClient(TargetClient):
        def _exchange(self, index: int):
            time.sleep(0.002)
            return self.payloads.expected[index], 16

    def new_client():
        if not loaded:
            end = time.perf_counter() + SLOW_START_S
            while time.perf_counter() < end:  # blocking, not a gevent sleep
                pass
            loaded.append(True)
        return SlowStartClient(spec.target, "", payloads, 1.0)

    new_client.n_inputs = len(payloads)
    return new_client


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["serve"])
    ap.add_argument("--service-ms", type=float, default=20.0)
    ap.add_argument("--serial", action="store_true")
    ap.add_argument(
        "--die-after", type=int, default=0, help="exit abruptly after this many answers"
    )
    a = ap.parse_args()
    serve(a.service_ms, a.serial, a.die_after)
