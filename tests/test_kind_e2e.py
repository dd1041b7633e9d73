"""The whole kind path: kind-up, one short in-cluster load step per target over REST and gRPC,
pod-recovery measurement, kind-down. Needs docker + kind + helm + kubectl (and network to pull
images); skipped elsewhere. Run: pytest -m cluster tests/test_kind_e2e.py (≈15-25 min)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helm_util import ROOT, find_helm

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]


def _missing() -> list[str]:
    missing = [t for t in ("docker", "kind", "kubectl") if shutil.which(t) is None]
    if find_helm() is None:
        missing.append("helm")
    if "docker" not in missing:
        ok = subprocess.run(["docker", "info"], capture_output=True).returncode == 0
        if not ok:
            missing.append("a running Docker engine")
    return missing


@pytest.fixture(scope="module")
def kind_cluster():
    missing = _missing()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to create a kind cluster")
    env = {**os.environ}
    if find_helm():
        env["SERVECMP_HELM"] = find_helm()
    try:
        subprocess.run(
            [str(ROOT / "scripts" / "kind-up.sh"), "experiments/quick.yaml"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=1800,
        )
        yield env
    finally:
        if os.environ.get("SERVECMP_KEEP_CLUSTER") != "1":
            subprocess.run([str(ROOT / "scripts" / "kind-down.sh")], cwd=ROOT, env=env, timeout=600)


def test_in_cluster_load_over_rest_and_grpc(kind_cluster) -> None:
    before = set((ROOT / "runs").glob("kind-*")) if (ROOT / "runs").is_dir() else set()
    args = [
        str(ROOT / "scripts" / "kind-load.sh"),
        "experiments/quick.yaml",
        "--duration",
        "15",
        "--users",
        "2",
    ]
    for target in (
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "tfserving-rest-json",
        "tfserving-grpc-tensorproto",
    ):
        args += ["--target", target]
    subprocess.run(args, cwd=ROOT, env=kind_cluster, check=True, timeout=1800)
    (run,) = set((ROOT / "runs").glob("kind-*")) - before
    from servecmp.results.friction import read_friction
    from servecmp.results.store import RunStore

    # The in-cluster steps are stored exactly like a local run's, and reported the same way.
    steps = RunStore(run).read_steps().steps
    for target in (
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "tfserving-rest-json",
        "tfserving-grpc-tensorproto",
    ):
        mine = [s for s in steps if s.target == target]
        assert mine and all(s.ok > 0 and s.wrong_answers == 0 for s in mine), f"{target}: {mine}"
    assert (Path(run) / "kind" / "cluster-report.json").is_file()
    assert (Path(run) / "report" / "report.md").is_file()
    metrics = {(r.server, r.metric) for r in read_friction(Path(run))[0] if r.available}
    assert {("torchserve", "install_ready_s"), ("tfserving", "image_bytes")} <= metrics


def test_pod_recovery_is_measured(kind_cluster) -> None:
    out = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "servecmp.deploy.kind.cluster",
            "recover",
            "--server",
            "tfserving",
        ],
        cwd=ROOT,
        env=kind_cluster,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    assert '"recovery_s"' in out
