"""The chart on its own: `helm lint` and `helm template` of helm/servecmp with nothing but its
committed values. Each subchart's generated block (configs, thread env, wire) is what
servecmp/cluster/helmvalues.py makes of loadtests/experiments/quick.yaml (drift fails here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helm_util import CHART, ROOT, SUBCHARTS, require_helm

from servecmp.cluster import helmvalues
from servecmp.experiment import load_experiment


def test_committed_defaults_are_the_generated_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert helmvalues.generate_chart_defaults(check=True) == 0, capsys.readouterr().err


def test_drift_is_named_and_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "checkout"
    shutil.copytree(CHART, root / "helm" / "servecmp", symlinks=True)
    (root / helmvalues.DEFAULTS_FROM).parent.mkdir(parents=True)
    shutil.copy2(ROOT / helmvalues.DEFAULTS_FROM, root / helmvalues.DEFAULTS_FROM)
    values = root / "helm" / "servecmp" / "charts" / "tfserving" / "values.yaml"
    edited = values.read_text().replace("    port: 8500\n", "    port: 9500\n")
    assert edited != values.read_text()
    values.write_text(edited)
    assert helmvalues.generate_chart_defaults(check=True, root=root) == 1
    err = capsys.readouterr().err
    assert (
        "helm/servecmp/charts/tfserving/values.yaml: wire differ" in err and "torchserve" not in err
    )
    assert helmvalues.generate_chart_defaults(check=False, root=root) == 0
    assert helmvalues.generate_chart_defaults(check=True, root=root) == 0
    assert values.read_text() == (SUBCHARTS["tfserving"] / "values.yaml").read_text()


def test_the_block_holds_quick_yaml_configs() -> None:
    exp = load_experiment(ROOT / helmvalues.DEFAULTS_FROM)
    for chart, data in helmvalues.chart_defaults(exp).items():
        committed = yaml.safe_load((SUBCHARTS[chart] / "values.yaml").read_text())
        assert committed["config"] == data["config"] and all(
            v.strip() for v in data["config"].values()
        )


def test_bare_chart_lints() -> None:
    helm = require_helm()
    proc = subprocess.run([helm, "lint", str(CHART)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "0 chart(s) failed" in proc.stdout


def test_bare_chart_templates_valid_manifests() -> None:
    import kubernetes_validate

    helm = require_helm()
    proc = subprocess.run(
        [helm, "template", "servecmp", str(CHART), "--namespace", "servecmp"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    deployments = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Deployment")
    assert deployments == [
        "servecmp-kserve",
        "servecmp-tfserving",
        "servecmp-torchserve",
        "servecmp-triton",
    ]
    for doc in docs:
        if not doc["apiVersion"].startswith("monitoring.coreos.com/"):
            kubernetes_validate.validate(doc, "1.32.0", strict=True)  # kind v0.27.0's node: 1.32
