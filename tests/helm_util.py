"""Helpers for the Helm chart tests: find helm, generate configs, render manifests.

helm is found via ``SERVECMP_HELM``, then ``.tools/bin/helm`` (scripts/install-helm.sh), then
PATH; tests that need it skip with the install hint when it is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "servecmp"
SUBCHARTS = {
    "torchserve": CHART / "charts" / "torchserve",
    "tfserving": CHART / "charts" / "tfserving",
    "kserve": CHART / "charts" / "kserve",
}
LIBCHART = CHART / "charts" / "servecmp-lib"
CI_DIR = CHART / "ci"
KIND_DIR = ROOT / "deploy" / "kind"
K8S_VERSIONS = ("1.29.0", "1.33.0")
HELM_HINT = "helm not found: run scripts/install-helm.sh (-> .tools/bin/helm) or set SERVECMP_HELM"


def find_helm() -> str | None:
    env = os.environ.get("SERVECMP_HELM")
    if env:
        return env if Path(env).is_file() else None
    local = ROOT / ".tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def require_helm() -> str:
    helm = find_helm()
    if helm is None:
        pytest.skip(HELM_HINT)
    return helm


# Each ci/ scenario is rendered with the configs of a matching experiment (the generator's
# inputs), so the batching scenario carries batching configs etc.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "two-replicas": {},
    "batching": {
        "resources": {"cpus": 2, "memory_mib": 3072},
        "tuning": {"batching": {"enabled": True, "max_batch_size": 8, "batch_timeout_ms": 5}},
    },
    "tfserving-only": {},
    "torchserve-only": {},
    "kserve-only": {},
}

BASE_EXPERIMENT: dict[str, Any] = {
    "name": "helm-test",
    "model": "resnet",
    "targets": [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "torchserve", "protocol": "grpc"},
        {"server": "tfserving", "protocol": "rest"},
        {"server": "tfserving", "protocol": "grpc"},
    ],
}


def _kserve_targets() -> list[dict[str, str]]:
    from servecmp.experiment import Server

    if "kserve" not in Server.__members__:
        return []
    return [{"server": "kserve", "protocol": "rest"}, {"server": "kserve", "protocol": "grpc"}]


KSERVE_TARGETS = _kserve_targets()
BASE_EXPERIMENT["targets"] += KSERVE_TARGETS


def experiment(**over: Any):
    from servecmp.experiment import parse_experiment

    data = {**BASE_EXPERIMENT, **over}
    return parse_experiment(data, "<helm test experiment>")


# ---- wire facts -----------------------------------------------------------------------------
# MERGE: RE-POINT AT THE REGISTRY. Until the adapters land (servers/{torchserve,tfserving,kserve}/
# __init__.py, other streams), the charts' `wire` values are built here from servers.base.Wire
# objects. At merge this whole function becomes
#     return registry.get(server).wire.values()
# (servecmp.servers.registry) and WIRE_TEST_ONLY goes away; nothing else in the tests builds wire.
def wire_values(server: str) -> dict[str, Any]:
    """The `<chart>.wire` block for ``server`` (= Wire.values() of its adapter)."""
    from servecmp.servers.base import Port, Wire

    wires = {
        # TorchServe 0.12.0 defaults (pytorch/serve v0.12.0 docs/configuration.md): inference 8080,
        # management 8081, metrics 8082 (/metrics), gRPC 7070 / 7071. Ready path as the chart
        # had it: startup/liveness GET /ping (readiness asks the management API for a READY worker).
        "torchserve": Wire(
            service="torchserve",
            ports=(
                Port("http", 8080, "rest"),
                Port("management", 8081, "management"),
                Port("metrics", 8082, "metrics"),
                Port("grpc", 7070, "grpc", "grpc"),
                Port("grpc-mgmt", 7071, "grpc-management", "grpc"),
            ),
            metrics_path="/metrics",
            ready_path="/ping",
            paths={"config": "/config/torchserve", "models": "/home/model-server/model-store"},
        ),
        # TF Serving: gRPC 8500, REST 8501 (tensorflow/serving 2.20.0 tensorflow_serving/tools/docker/
        # Dockerfile: the entrypoint's --port=8500 --rest_api_port=8501); Prometheus is served on the
        # REST port at the path of the generated monitoring.config (prometheus_config.path).
        "tfserving": Wire(
            service="tfserving",
            ports=(
                Port("grpc", 8500, "grpc", "grpc"),
                Port("http", 8501, "rest"),
                Port("metrics", 8501, "metrics"),
            ),
            metrics_path="/monitoring/prometheus/metrics",
            ready_path="/v1/models/{model}",
            paths={"config": "/config/tfserving", "models": "/models"},
        ),
        # KServe 0.21.0 (kserve/constants/constants.py DEFAULT_HTTP_PORT 8080, DEFAULT_GRPC_PORT
        # 8081; kserve/protocol/rest/server.py serves GET /metrics on the HTTP port;
        # v2_endpoints.py GET /v2/models/{model_name}/ready).
        "kserve": Wire(
            service="kserve",
            ports=(
                Port("http", 8080, "rest"),
                Port("grpc", 8081, "grpc", "grpc"),
                Port("metrics", 8080, "metrics"),
            ),
            metrics_path="/metrics",
            ready_path="/v2/models/{model}/ready",
            paths={"config": "/config/kserve", "models": "/mnt/models"},
        ),
    }
    return wires[server].values()


def port_name(server: str, role: str) -> str:
    """The wire's port name for a role (tests assert by role, whatever the adapter names it)."""
    return next(n for n, p in sorted(wire_values(server)["ports"].items()) if p["role"] == role)


WIRE_TEST_ONLY = True  # MERGE: delete with the Wire objects above once the registry has them


def write_wire_values(path: Path) -> Path:
    """A values file with every subchart's generated `wire` block. MERGE: drop it once
    deploy/kind/helmvalues.py writes `<chart>.wire` itself (seam stream)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({s: {"wire": wire_values(s)} for s in SUBCHARTS}, sort_keys=True))
    return path


def write_kserve_configs(exp: Any, config_dir: Path) -> Path:
    """KServe's generated flags.txt for the chart tests. MERGE: RE-POINT AT THE REGISTRY:
    ``registry.get("kserve").render(exp, Placement.kubernetes())`` (servers/kserve/config.py) and
    write_configs write it; the flags follow servers/kserve/model_server.py's documented CLI."""
    wire = wire_values("kserve")
    ports = wire["ports"]
    flags = [
        f"--model_name={exp.model}",
        f"--model_dir={wire['paths']['models']}/{exp.model}",
        f"--intra_op_threads={exp.intra_op_threads}",
        f"--http_port={ports['http']['port']}",
        f"--grpc_port={ports['grpc']['port']}",
        f"--workers={exp.tuning.workers}",
    ]
    out = config_dir / "kserve" / "flags.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(flags) + "\n")
    return out


@dataclass
class Inputs:
    exp: Any
    config_dir: Path
    values_file: Path
    wire_file: Path | None = None

    def set_file_args(self) -> list[str]:
        from servecmp.deploy.kind.helmvalues import set_file_args

        return set_file_args(self.config_dir)

    def file(self, server: str, name: str) -> str:
        return (self.config_dir / server / name).read_text()

    def env(self, server: str) -> dict[str, str]:
        out = {}
        for line in (self.config_dir / server / "env").read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
        return out


def make_inputs(tmp: Path, **over: Any) -> Inputs:
    from servecmp.deploy.kind.helmvalues import write_helm_inputs

    exp = experiment(**over)
    config_dir, values_file = write_helm_inputs(exp, tmp)
    if not (config_dir / "kserve" / "flags.txt").is_file():
        write_kserve_configs(exp, config_dir)
    if not KSERVE_TARGETS:  # MERGE: the experiment targets kserve once Server.kserve exists
        values = yaml.safe_load(values_file.read_text())
        values.setdefault("kserve", {})["enabled"] = True
        values_file.write_text(yaml.safe_dump(values, sort_keys=False))
    return Inputs(exp, config_dir, values_file, write_wire_values(tmp / "wire-values.yaml"))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [require_helm(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr}"
        )
    return proc


def template_args(
    inputs: Inputs | None, values: list[Path] = (), extra: list[str] = (), chart: Path = CHART
) -> list[str]:
    args = ["template", "servecmp", str(chart), "--namespace", "servecmp"]
    if inputs is not None:
        if inputs.wire_file is not None:
            args += ["-f", str(inputs.wire_file)]
        args += ["-f", str(inputs.values_file)]
    for v in values:
        args += ["-f", str(v)]
    if inputs is not None:
        args += inputs.set_file_args()
    return [*args, *extra]


def render(
    inputs: Inputs | None, values: list[Path] = (), extra: list[str] = (), chart: Path = CHART
) -> list[dict[str, Any]]:
    out = helm(*template_args(inputs, values, extra, chart)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for d in by_kind(docs, kind):
        if d["metadata"]["name"] == name:
            return d
    raise AssertionError(
        f"no {kind} named {name}; have {[d['metadata']['name'] for d in by_kind(docs, kind)]}"
    )


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every workload and bare pod."""
    out = []
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            out.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d.get("kind") == "Pod":
            out.append((d["metadata"]["name"], d["spec"]))
    return out


def load_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
