"""A recording ``commands.Ops`` for servecmp/cluster/commands.py called as a library: no docker,
kind, kubectl or helm runs. It answers like a host with no image built yet and, with
``cluster=True``, a running cluster whose server Deployments have ``replicas`` pods (and, with
``grafana_secret``, the Grafana admin Secret); the load Job's log is ``job_log``. Every call lands in ``calls`` (argv) and ``stdins`` (what was piped).
The shell-level dry run of the same flow is tests/test_kind_scripts.py. Test-only."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servecmp.cluster import commands

COPY = ("deploy", "helm", "servecmp", "loadtests")


# What the scripts' dry runs copy: a checkout as a user has it (symlinked library chart followed).
SCRIPT_COPY = (
    "scripts",
    "deploy",
    "helm",
    "servecmp",
    "models",
    "loadtests",
    "pyproject.toml",
    "README.md",
)


def free_host_ports(root: Path) -> None:
    """The copied kind config maps ports that are free now: `kind up` checks them before it
    creates a cluster, and 3000/9090 may be busy on a shared test machine."""
    import socket

    import yaml

    cfg_path = root / "deploy" / "kind" / "kind-config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    for node in cfg["nodes"]:
        for m in node.get("extraPortMappings") or []:
            with socket.socket() as s:
                s.bind((m["listenAddress"], 0))
                m["hostPort"] = s.getsockname()[1]
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def copy_script_checkout(src: Path, root: Path) -> Path:
    """A copy of the checkout for the scripts' dry runs, its mapped host ports free."""
    for item in SCRIPT_COPY:
        if (src / item).is_dir():
            shutil.copytree(
                src / item, root / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / item, root / item)
    free_host_ports(root)
    return root


def copy_checkout(src: Path, root: Path) -> Path:
    for item in COPY:
        shutil.copytree(
            src / item,
            root / item,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(src / item, root / item)
    return root


class RecordingOps(commands.Ops):
    def __init__(
        self,
        root: Path,
        cluster: bool = False,
        *,
        job_log: str = "",
        replicas: int = 1,
        grafana_secret: bool = False,
    ) -> None:
        super().__init__(root=root, helm="helm", python="python", quiet=True)
        self.calls: list[list[str]] = []
        self.stdins: list[str | None] = []
        self.cluster = cluster
        self.job_log = job_log
        self.replicas = replicas
        self.grafana_secret = grafana_secret

    def index(self, pred: Any) -> int:
        """Position of the first call matching ``pred`` (ValueError when none)."""
        for i, c in enumerate(self.calls):
            if pred(c):
                return i
        raise ValueError("no such call")

    def module_calls(self, module: str, sub: str) -> list[list[str]]:
        return [c for c in self.calls if c[:3] == ["python", "-m", module] and sub in c[3:]]

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        capture: bool = False,
        stdin: str | None = None,
        stdout: Any = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = list(cmd)
        self.calls.append(cmd)
        self.stdins.append(stdin)
        rc, out = 0, ""
        if cmd[:3] == ["docker", "image", "inspect"]:
            rc = 1  # nothing built or pulled yet
        elif cmd[:3] == ["kind", "get", "clusters"]:
            out = "servecmp\n" if self.cluster else ""
        elif cmd[:3] == ["python", "-m", "servecmp.cli"] and "export" in cmd:
            model = cmd[cmd.index("--model") + 1]
            out_dir = Path(cmd[cmd.index("--out") + 1]) / model
            (out_dir / "torchserve").mkdir(parents=True, exist_ok=True)
            for name in (f"{model}.mar", f"{model}_v2.mar"):
                with zipfile.ZipFile(out_dir / "torchserve" / name, "w") as zf:
                    zf.writestr("model.pt", b"torchscript")
            for v in ("1", "2"):
                (out_dir / "tfserving" / model / v).mkdir(parents=True, exist_ok=True)
                (out_dir / "tfserving" / model / v / "saved_model.pb").write_bytes(v.encode())
        elif (
            cmd[:3] == ["python", "-m", "servecmp.cluster.cluster"]
            and "report" in cmd
            and "--out" in cmd
        ):
            path = Path(cmd[cmd.index("--out") + 1])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"namespace": "servecmp", "servers": {}}))
        elif cmd[:1] == ["kubectl"] and "logs" in cmd:
            if stdout is not None:
                stdout.write(self.job_log)
            out = self.job_log
        elif cmd[:1] == ["kubectl"] and cmd[-3:-1] == ["get", "secret"]:
            rc = 0 if self.grafana_secret else 1
        elif (
            cmd[:1] == ["kubectl"]
            and "deployments" in cmd
            and "jsonpath={.items[*].spec.replicas}" in cmd
        ):
            out = str(self.replicas)
        return subprocess.CompletedProcess(cmd, rc, out, "")
