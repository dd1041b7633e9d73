"""values.schema.json and the chart's own consistency checks refuse bad values with a message
that names the field. One test per kind of error."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_util import helm, make_inputs, require_helm, template_args

pytestmark = pytest.mark.helm


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory):
    require_helm()
    return make_inputs(tmp_path_factory.mktemp("schema"))


def _fails(inputs, *extra: str, with_inputs: bool = True) -> str:
    proc = helm(*template_args(inputs if with_inputs else None, extra=list(extra)), check=False)
    assert proc.returncode != 0, "helm template accepted bad values"
    return proc.stderr


@pytest.mark.parametrize(
    ("extra", "field", "why"),
    [
        (["--set", "global.resources.cpu=-1"], "global.resources.cpu", "greater than 0"),
        (["--set", "global.resources.cpu=0"], "global.resources.cpu", "greater than 0"),
        (["--set", "global.replicas=two"], "global.replicas", "Expected: integer"),
        (["--set", "global.protocols={rest,http}"], "global.protocols", "rest"),
        (["--set", "global.modelArtifacts.source=pvc"], "global.modelArtifacts.source", "image"),
        (["--set", "torchserve.service.type=LoadBalancer"], "service.type", "ClusterIP"),
        (["--set", "global.resources.memoryMiB=100"], "global.resources.memoryMiB", "256"),
        (["--set", "global.unknownKey=1"], "unknownKey", "Additional property"),
        (["--set", "tfserving.ports.http=70000"], "ports.http", "65535"),
    ],
    ids=[
        "negative-cpu",
        "zero-cpu",
        "wrong-type",
        "unknown-protocol",
        "unknown-artifact-source",
        "bad-service-type",
        "too-little-memory",
        "unknown-key",
        "port-out-of-range",
    ],
)
def test_schema_rejects(inputs, extra: list[str], field: str, why: str) -> None:
    err = _fails(inputs, *extra)
    assert "schema" in err and field in err and why in err, err


@pytest.mark.parametrize("tag", ["latest", ""])
def test_unpinned_image_tag_rejected(inputs, tag: str) -> None:
    err = _fails(inputs, "--set", f"torchserve.image.tag={tag}")
    assert "image.tag" in err, err


def test_missing_generated_config_is_explained(inputs) -> None:
    err = _fails(inputs, with_inputs=False)
    assert "config.properties is empty" in err or "tfserving.config.models is empty" in err
    assert "--set-file" in err


def test_port_mismatch_with_generated_config_is_refused(inputs) -> None:
    err = _fails(inputs, "--set", "torchserve.ports.http=9000")
    assert "inference_address" in err and "9000" in err
    err = _fails(inputs, "--set", "tfserving.ports.grpc=9500")
    assert "--port=9500" in err


def test_model_name_mismatch_with_generated_config_is_refused(inputs) -> None:
    err = _fails(inputs, "--set", "global.model.name=tiny")
    assert "base_path" in err and "tiny" in err


def test_config_outside_mount_dir_is_refused(inputs, tmp_path: Path) -> None:
    flags = tmp_path / "flags.txt"
    flags.write_text(
        (inputs.config_dir / "tfserving" / "flags.txt")
        .read_text()
        .replace("/config/tfserving/models.config", "/etc/models.config")
    )
    err = _fails(inputs, "--set-file", f"tfserving.config.flags={flags}")
    assert "outside the mounted config directory" in err
