"""Peak RSS of the step child (``python -m servecmp.load.engine.step``) per target kind:
the number the in-cluster load Job's memory request/limit is sized from
(servecmp.cluster.loadgen.STEP_PEAK_RSS_MIB). Prints figures; asserts nothing.

Each step runs the real child (imports, payloads, clients, users, histograms, recorder) for a
short closed-loop step at concurrency 64 against a loopback port nobody listens on, so every
request takes the whole client path and fails fast; no server of any kind is involved (and none is
reported). TorchServe's gRPC stubs are generated cold (as in a fresh pod: protoc runs in the child,
which is its peak). It also prints which heavy frameworks the child imported.

    .venv/bin/python scripts/measure_step_memory.py [--model resnet] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from servecmp.experiment import parse_experiment
from servecmp.load.engine.spec import make_spec, plan_steps

KINDS = [
    ("torchserve", "rest", "json"),
    ("torchserve", "rest", "raw"),
    ("torchserve", "grpc", None),
    ("tfserving", "rest", "json"),
    ("tfserving", "grpc", None),
]

WRAPPER = """
import json, runpy, sys
sys.argv = ["step", "--spec", sys.argv[1], "--out", sys.argv[2]]
try:
    runpy.run_module("servecmp.load.engine.step", run_name="__main__")
except SystemExit:
    pass
finally:
    mods = sys.modules
    # VmHWM: this process image's peak RSS. (ru_maxrss would not do: Linux carries it over
    # fork + execve, so a child of a big parent, e.g. pytest, reports the parent's peak.)
    hwm = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
    print("MEASURED " + json.dumps({
        "peak_rss_mib": round(hwm / 1024, 1),
        "tensorflow": "tensorflow" in mods, "torch": "torch" in mods,
    }))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(
    server: str,
    protocol: str,
    encoding: str | None,
    model: str,
    concurrency: int,
    multiprocess: bool = True,
) -> dict:
    target = {
        "server": server,
        "protocol": protocol,
        **({"encoding": encoding} if encoding else {}),
    }
    exp = parse_experiment(
        {
            "name": "rss",
            "model": model,
            "targets": [target],
            "load": {
                "profile": "closed_loop",
                "warmup_s": 1,
                "concurrency": [concurrency],
                "stability": {"window_s": 1, "windows": 2, "max_windows": 2},
            },
        },
        "<measure_step_memory>",
    )
    (t,) = exp.targets
    spec = make_spec(
        run_id="rss",
        index=0,
        target=t,
        address=f"127.0.0.1:{_free_port()}",
        load=exp.load,
        param=plan_steps(exp.load)[0],
        model=exp.model,
        payload=exp.payload,
        seed=exp.seed,
        grace_s=120,
    )  # cold imports + protoc on a busy machine: no self-destruct
    with tempfile.TemporaryDirectory() as td:
        spec_path = spec.write(Path(td) / "spec.json")
        # As in the Job: a minimal environment, no generated TorchServe gRPC stubs yet (protoc runs
        # cold in the child), and prometheus-client's multiprocess mode, which `servecmp steps
        # --metrics-port` switches on (its mmap'd metric files count in the child's RSS).
        (Path(td) / "prom").mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": td,
            "LANG": "C.UTF-8",
            "SERVECMP_GRPC_STUB_DIR": str(Path(td) / "stubs"),
            "PROMETHEUS_MULTIPROC_DIR": str(Path(td) / "prom"),
        }
        if not multiprocess:
            env.pop("PROMETHEUS_MULTIPROC_DIR")
        out = subprocess.run(
            [sys.executable, "-c", WRAPPER, str(spec_path), str(Path(td) / "run")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MEASURED ")), None)
    if line is None:
        raise RuntimeError(
            f"{t.name}: no measurement (exit {out.returncode})\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
        )
    return {
        "target": t.name,
        "metrics_multiprocess": multiprocess,
        **json.loads(line[len("MEASURED ") :]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    for server, protocol, encoding in KINDS:
        print(
            json.dumps(measure(server, protocol, encoding, args.model, args.concurrency)),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
