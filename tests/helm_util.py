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
    "triton": CHART / "charts" / "triton",
    "rayserve": CHART / "charts" / "rayserve",
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


BASE_TARGETS: list[dict[str, Any]] = [
    {"server": "torchserve", "protocol": "rest"},
    {"server": "torchserve", "protocol": "grpc"},
    {"server": "tfserving", "protocol": "rest"},
    {"server": "tfserving", "protocol": "grpc"},
    {"server": "kserve", "protocol": "rest"},
    {"server": "kserve", "protocol": "grpc"},
    {"server": "triton", "protocol": "rest"},
    {"server": "triton", "protocol": "grpc"},
    {"server": "rayserve", "protocol": "rest"},
    {"server": "rayserve", "protocol": "grpc"},
]
BASE_EXPERIMENT: dict[str, Any] = {"name": "helm-test", "model": "resnet", "targets": BASE_TARGETS}

# Each ci/ scenario is rendered with the configs of a matching experiment (the generator's
# inputs), so the batching scenario carries batching configs etc.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "two-replicas": {},
    "batching": {  # KServe has no server-side batching: validation refuses its targets here
        "resources": {"cpus": 2, "memory_mib": 3072},
        "tuning": {"batching": {"enabled": True, "max_batch_size": 8, "batch_timeout_ms": 5}},
        "targets": [t for t in BASE_TARGETS if t["server"] != "kserve"],
    },
    "tfserving-only": {},
    "torchserve-only": {},
    "kserve-only": {},
}


def experiment(**over: Any):
    from servecmp.experiment import parse_experiment

    data = {**BASE_EXPERIMENT, **over}
    return parse_experiment(data, "<helm test experiment>")


# ---- wire facts -----------------------------------------------------------------------------
def wire_values(server: str) -> dict[str, Any]:
    """The `<chart>.wire` block for ``server``: its adapter's ``Wire.values()``, exactly what
    servecmp/cluster/helmvalues.py generates (the charts carry no copy of ports or paths)."""
    from servecmp.servers import registry

    wire = registry.get(server).wire
    assert wire is not None, f"{server} has no wire (in-process baseline)"
    return wire.values()


def port_name(server: str, role: str) -> str:
    """The wire's port name for a role (tests assert by role, whatever the adapter names it)."""
    return next(n for n, p in sorted(wire_values(server)["ports"].items()) if p["role"] == role)


@dataclass
class Inputs:
    exp: Any
    config_dir: Path
    values_file: Path
    wire_file: Path | None = None

    def set_file_args(self) -> list[str]:
        from servecmp.cluster.helmvalues import set_file_args

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
    from servecmp.cluster.helmvalues import write_helm_inputs

    exp = experiment(**over)
    config_dir, values_file = write_helm_inputs(exp, tmp)
    # the generated values carry every chart's wire block; the schema tests also use it alone
    wire_file = tmp / "wire-values.yaml"
    values = yaml.safe_load(values_file.read_text())
    wire_file.write_text(
        yaml.safe_dump({s: {"wire": values[s]["wire"]} for s in SUBCHARTS}, sort_keys=True)
    )
    return Inputs(exp, config_dir, values_file, wire_file)


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
