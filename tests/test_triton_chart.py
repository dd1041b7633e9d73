"""The Triton subchart and the umbrella's helm test for it, rendered with the generated configs of
an experiment with Triton targets (helm template; skipped without helm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helm_util import CI_DIR, helm, make_inputs, named, render, require_helm, template_args

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[dict[str, Any]]]:
    require_helm()
    inputs = make_inputs(tmp_path_factory.mktemp("triton chart"), tuning={"workers": 2})
    return inputs, render(inputs, [CI_DIR / "default-values.yaml"])


def test_container_runs_exactly_the_generated_flags_after_completing_the_repository(
    rendered: tuple[Any, list[dict[str, Any]]],
) -> None:
    inputs, docs = rendered
    spec = named(docs, "Deployment", "servecmp-triton")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    script, argv0, *flags = c["args"]
    assert c["command"] == ["/bin/sh", "-ec"] and argv0 == "tritonserver"
    assert flags == [
        ln.strip()
        for ln in inputs.file("triton", "flags.txt").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert 'cp "/config/triton/config.pbtxt" "$m/config.pbtxt"' in script
    assert '"/opt/servecmp/model.py" "$v/model.py"' in script and 'exec tritonserver "$@"' in script
    cm = named(docs, "ConfigMap", "servecmp-triton-config")["data"]
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in cm["config.pbtxt"]
    (init,) = spec["initContainers"]
    assert "/artifacts/kserve/resnet/." in init["command"][-1]  # the staged TorchScript file
    shm = next(v for v in spec["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_helm_test_posts_the_oip_body_to_triton(
    rendered: tuple[Any, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    body = json.loads(named(docs, "ConfigMap", "servecmp-test-body")["data"]["oip.json"])
    (t,) = body["inputs"]
    assert (t["name"], t["shape"], t["datatype"]) == ("input", [1, 3, 64, 64], "FP32")
    assert len(t["data"]) == 3 * 64 * 64
    script = named(docs, "Pod", "servecmp-test-inference")["spec"]["containers"][0]["args"][0]
    assert "http://servecmp-triton:8000/v2/models/resnet/infer" in script
    assert "*/infer) body=oip.json; field=outputs" in script
    # the other servers keep the TF Serving-style body
    assert "http://servecmp-kserve:8080/v1/models/resnet:predict" in script


def test_a_hostpath_artifact_source_is_refused_by_name(
    rendered: tuple[Any, list[dict[str, Any]]], tmp_path: Path
) -> None:
    inputs, _ = rendered
    values = tmp_path / "hostpath.yaml"
    values.write_text(
        "global:\n  modelArtifacts:\n    source: hostPath\n    hostPath: /servecmp/artifacts\n"
    )
    proc = helm(*template_args(inputs, [values]), check=False)
    assert proc.returncode != 0
    assert 'triton: global.modelArtifacts.source must be \\"image\\"' in proc.stderr or (
        'global.modelArtifacts.source must be "image"' in proc.stderr
    )
