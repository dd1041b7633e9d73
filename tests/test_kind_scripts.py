"""Dry run of scripts/kind-up.sh and scripts/kind-load.sh without a cluster: docker, kind, kubectl
and helm are recording fakes (tests/kind_dryrun/bin), SERVECMP_PYTHON is a shim that passes every
`python -m servecmp...` call through the module's real argument parser and runs every command that
needs no cluster for real (tests/kind_dryrun/shim.py). So a wrong option, a missing file or a step
in the wrong order fails here, not on a user's first `make kind-up && make kind-load`."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from helm_util import ROOT
from kind_dryrun.recording import copy_script_checkout

DRY = Path(__file__).parent / "kind_dryrun"


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "a checkout"
    copy_script_checkout(ROOT, root)
    py = tmp_path / "py"
    py.write_text(
        f"#!/bin/bash\nexec {shlex.quote(str(ROOT / '.venv' / 'bin' / 'python'))} "
        f'{shlex.quote(str(DRY / "shim.py"))} "$@"\n'
    )
    py.chmod(0o755)
    return root


def _env(tmp: Path, root: Path | None = None, **extra: str) -> dict[str, str]:
    """The dry run's environment; the shim imports servecmp from the copied checkout ``root``
    (default: the ``checkout`` fixture's), not from wherever the test venv was installed from."""
    from servecmp.cluster.loadgen import STEP_MARK
    from servecmp.results.schema import StepResult

    step = StepResult(
        run_id="kind-x",
        step_id="000-torchserve-rest-json-closed_loop-c1",
        index=0,
        target="torchserve-rest-json",
        server="torchserve",
        protocol="rest",
        encoding="json",
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=1,
        started_at="2026-01-01T00:00:00Z",
        warmup_s=1,
        window_s=1,
        stop_reason="stable",
        ok=10,
        requests=10,
    )
    line = tmp / "step-line.txt"
    line.write_text(STEP_MARK + step.model_dump_json() + "\n")
    return {
        "PATH": f"{DRY / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "DRYRUN_LOG": str(tmp / "calls.log"),
        "DRYRUN_STEP_LINE": str(line),
        "SERVECMP_PYTHON": str(tmp / "py"),
        "SERVECMP_HELM": str(DRY / "bin" / "helm"),
        "PYTHONPATH": str(root or tmp / "a checkout"),
        **extra,
    }


def _calls(tmp: Path) -> list[list[str]]:
    out = []
    for ln in (tmp / "calls.log").read_text().splitlines():
        try:
            out.append(shlex.split(ln))
        except ValueError:
            out.append(ln.split())
    return out


def _run(
    root: Path, script: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / script), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _index(calls: list[list[str]], pred) -> int:
    return next(i for i, c in enumerate(calls) if pred(c))


@pytest.mark.heavy  # runs the kind scripts end to end in a copied checkout
@pytest.mark.timeout(900)
def test_kind_up_dry_run(checkout: Path, tmp_path: Path) -> None:
    proc = _run(checkout, "kind-up.sh", _env(tmp_path), "loadtests/experiments/quick.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "preflight ok" in proc.stdout
    )  # servecmp.cluster.commands.up (`servecmp kind up`) checked the budget first
    calls = _calls(tmp_path)
    # the script only checks prerequisites, then hands over to the library function
    handover = _index(calls, lambda c: c[2:4] == ["servecmp.cli", "kind"])
    assert calls[handover][-2:] == ["up", "loadtests/experiments/quick.yaml"]
    create = _index(calls, lambda c: c[:3] == ["kind", "create", "cluster"])
    nodes = _index(calls, lambda c: c[:1] == ["kubectl"] and "--for=condition=Ready" in c)
    export = _index(calls, lambda c: "servecmp.cli" in c and "export" in c)
    assert handover < create < nodes < export
    # images: built here, loaded onto the server node only (kind load --nodes, via images.load_image)
    loads = [c for c in calls if c[:3] == ["kind", "load", "docker-image"]]
    assert [c[-1].split(":")[0] for c in loads] == [
        "servecmp/model-artifacts",
        "servecmp/kserve",
        "tensorflow/serving",
        "servecmp/torchserve",
    ]
    assert all(c[c.index("--nodes") + 1] == "servecmp-worker" for c in loads)
    builds = [c for c in calls if c[:2] == ["docker", "build"]]
    assert any(any(a.endswith("deploy/kind/torchserve.Dockerfile") for a in c) for c in builds)
    assert export < _index(calls, lambda c: c[:2] == ["docker", "build"])
    # only v1 in the artifacts context / hostPath copy; KServe gets the .mar's TorchScript
    staged = checkout / "build" / "kind" / "artifacts"
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == [
        "kserve/resnet/1/model.pt",
        "tfserving/resnet/1/saved_model.pb",
        "torchserve/resnet.mar",
    ]
    # helm: no --wait; the chart gets the built tags; the namespace enforces PSS restricted first
    ups = [c for c in calls if c[:3] == ["helm", "upgrade", "--install"]]
    assert len(ups) == 2 and not any("--wait" in c for c in ups)
    chart = ups[1]
    sets = [chart[i + 1] for i, a in enumerate(chart) if a == "--set"]
    ts_tag = next(s for s in sets if s.startswith("torchserve.image.tag="))
    assert ts_tag.startswith("torchserve.image.tag=0.12.0-py3.11-torch2.13.0-")
    assert any(s.startswith("global.modelArtifacts.image.tag=resnet-") for s in sets)
    assert _index(
        calls, lambda c: "label" in c and any("enforce=restricted" in a for a in c)
    ) < calls.index(chart)
    waits = [c for c in calls if "servecmp.cluster.cluster" in c and "wait" in c]
    assert len(waits) == 2 and calls.index(waits[1]) > calls.index(chart)
    assert calls.index(chart) < _index(calls, lambda c: c[:2] == ["helm", "test"])


@pytest.mark.heavy  # runs the kind scripts end to end in a copied checkout
@pytest.mark.timeout(900)
def test_kind_up_generates_values_the_chart_accepts(checkout: Path, tmp_path: Path) -> None:
    """The exact `helm upgrade --install` the flow runs, with the values files and --set-file
    paths it generated, rendered by the real helm and validated strictly against Kubernetes."""
    import kubernetes_validate
    import yaml
    from helm_util import require_helm

    real_helm = require_helm()
    proc = _run(checkout, "kind-up.sh", _env(tmp_path), "loadtests/experiments/quick.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    chart = [c for c in _calls(tmp_path) if c[:3] == ["helm", "upgrade", "--install"]][1]
    args = chart[3:]
    for flag in ("--kube-context",):
        i = args.index(flag)
        del args[i : i + 2]
    rendered = subprocess.run(
        [real_helm, "template", *args], cwd=checkout, capture_output=True, text=True, timeout=300
    )
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    deployments = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Deployment")
    assert deployments == [
        "servecmp-kserve",
        "servecmp-tfserving",
        "servecmp-torchserve",
    ]  # what quick.yaml targets
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, "1.32.0", strict=True)  # the kind node's Kubernetes
    images = {
        c["image"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert any(i.startswith("servecmp/torchserve:0.12.0-py3.11-torch2.13.0-") for i in images)


def test_kind_up_stops_in_seconds_on_a_two_core_host(checkout: Path, tmp_path: Path) -> None:
    proc = _run(
        checkout, "kind-up.sh", _env(tmp_path, DRYRUN_NCPU="2"), "loadtests/experiments/quick.yaml"
    )
    assert proc.returncode == 3
    # three servers (quick.yaml) at 1 CPU each on one server node
    assert "resources.cpus <= 0.6" in proc.stderr and "3.1 CPU of 2 allocatable" in proc.stderr
    calls = _calls(tmp_path)
    assert not any(
        c[:2] in (["kind", "create"], ["helm", "upgrade"], ["docker", "build"]) for c in calls
    )


@pytest.mark.heavy  # runs the kind scripts end to end in a copied checkout
@pytest.mark.timeout(900)
def test_kind_load_dry_run_keeps_the_steps_a_killed_job_printed(
    checkout: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, DRYRUN_CLUSTER="1")
    proc = _run(
        checkout,
        "kind-load.sh",
        env,
        "loadtests/experiments/quick.yaml",
        "--target",
        "torchserve-rest-json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (checkout / "runs").glob("kind-*")
    assert "000-torchserve-rest-json" in (run / "steps.jsonl").read_text()
    assert (run / "meta.json").is_file() and (run / "kind" / "torchserve-rest-json.yaml").is_file()
    calls = _calls(tmp_path)
    load = next(c for c in calls if c[:3] == ["kind", "load", "docker-image"])
    assert load[load.index("--nodes") + 1] == "servecmp-worker2" and load[-1].startswith(
        "servecmp/loadgen:"
    )
    assert any(c[:1] == ["kubectl"] and "logs" in c and "-f" in c for c in calls)
    assert any("wait-job" in c for c in calls)
    # the Job targets the Service the wire names (the same generated values the chart got)
    manifest = (run / "kind" / "torchserve-rest-json.yaml").read_text()
    assert "servecmp-torchserve.servecmp.svc:8080" in manifest


def test_kind_load_refuses_locust_options_with_the_steps_engine(
    checkout: Path, tmp_path: Path
) -> None:
    proc = _run(checkout, "kind-load.sh", _env(tmp_path, DRYRUN_CLUSTER="1"), "--duration", "30")
    assert proc.returncode == 2 and "--duration applies to --engine locust only" in proc.stderr
    # nothing beyond the prerequisite checks (versions) ran
    assert all("version" in c for c in _calls(tmp_path) if c[0] in ("docker", "kubectl", "kind"))


@pytest.mark.heavy  # runs the kind scripts end to end in a copied checkout
@pytest.mark.timeout(900)
def test_kind_load_locust_engine_dry_run(checkout: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, DRYRUN_CLUSTER="1")
    proc = _run(
        checkout,
        "kind-load.sh",
        env,
        "--engine",
        "locust",
        "--duration",
        "20",
        "--users",
        "2",
        "--target",
        "tfserving-rest-json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (checkout / "runs").glob("kind-*")
    import yaml

    docs = list(yaml.safe_load_all((run / "kind" / "tfserving-rest-json.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service", "Job", "Job"]
    assert not os.path.exists(run / "steps.jsonl")  # Locust's CSVs, not steps


def test_kind_load_preflight_counts_locust_workers(checkout: Path, tmp_path: Path) -> None:
    proc = _run(
        checkout,
        "kind-load.sh",
        _env(tmp_path, DRYRUN_CLUSTER="1", DRYRUN_NCPU="4"),
        "--engine",
        "locust",
        "--workers",
        "4",
        "--target",
        "tfserving-rest-json",
    )
    assert proc.returncode == 3 and "TOO MUCH: loadgen node" in proc.stderr


@pytest.mark.heavy  # runs the kind scripts end to end in a copied checkout
@pytest.mark.timeout(900)
def test_kind_up_renders_the_mount_path_of_any_checkout(tmp_path: Path) -> None:
    """The kind config gets this checkout's absolute artifacts path, whatever characters it has
    (the sed substitution broke on '#' and mangled '&')."""
    import yaml

    odd = tmp_path / "odd #1 & co: checkout"
    copy_script_checkout(ROOT, odd)
    py = tmp_path / "py"
    py.write_text(
        f"#!/bin/bash\nexec {shlex.quote(str(ROOT / '.venv' / 'bin' / 'python'))} "
        f'{shlex.quote(str(DRY / "shim.py"))} "$@"\n'
    )
    py.chmod(0o755)
    proc = _run(odd, "kind-up.sh", _env(tmp_path, odd), "loadtests/experiments/quick.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = yaml.safe_load((odd / "build" / "kind" / "kind-config.yaml").read_text())
    mounts = [m for n in cfg["nodes"] for m in n.get("extraMounts") or []]
    assert [m["hostPath"] for m in mounts] == [str(odd / "build" / "kind" / "artifacts")]
    assert cfg["nodes"][0]["extraPortMappings"][0]["listenAddress"] == "127.0.0.1"
