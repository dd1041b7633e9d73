"""values.schema.json and the chart's own consistency checks refuse bad values with a message
that names the field. One test per kind of error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from helm_util import helm, make_inputs, port_name, require_helm, template_args, wire_values

pytestmark = pytest.mark.helm
TF_REST, KS_GRPC = port_name("tfserving", "rest"), port_name("kserve", "grpc")


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
        (
            ["--set", f"tfserving.wire.ports.{TF_REST}.port=70000"],
            f"wire.ports.{TF_REST}.port",
            "65535",
        ),
        (
            ["--set", f"kserve.wire.ports.{KS_GRPC}.role=inference"],
            f"wire.ports.{KS_GRPC}.role",
            "rest",
        ),
        (["--set", "torchserve.wire.metricsPath=metrics"], "wire.metricsPath", "^/"),
        (["--set", "kserve.wire.extra=1"], "wire", "Additional property extra"),
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
        "unknown-port-role",
        "relative-metrics-path",
        "unknown-wire-key",
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
    # the committed defaults carry quick.yaml's configs: an emptied one is what the guard catches
    proc = helm(
        *template_args(
            None,
            extra=[
                "-f",
                str(inputs.wire_file),
                "-f",
                str(inputs.values_file),
                "--set-string",
                "tfserving.config.models=",
            ],
        ),
        check=False,
    )
    assert proc.returncode != 0
    assert re.search(r"(torchserve|tfserving|kserve)\.config\.\w+ is empty", proc.stderr), (
        proc.stderr
    )
    assert "--set-file" in proc.stderr


# ---- the one wire guard (servecmp-lib.wire) -------------------------------------------------------
def _without_wire(inputs, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The generated values file with every chart's wire block removed, the committed default
    included (a null value deletes a chart default in helm)."""
    values = yaml.safe_load(inputs.values_file.read_text())
    for block in values.values():
        if isinstance(block, dict) and "wire" in block:
            block["wire"] = None
    out = tmp_path / "values-without-wire.yaml"
    out.write_text(yaml.safe_dump(values, sort_keys=False))
    return out


def test_missing_wire_is_refused_by_the_schema(inputs, tmp_path: Path) -> None:
    """Without the generated wire values the chart does not render (every server requires it)."""
    proc = helm(
        *template_args(
            None, extra=["-f", str(_without_wire(inputs, tmp_path)), *inputs.set_file_args()]
        ),
        check=False,
    )
    assert proc.returncode != 0
    for server in ("torchserve", "tfserving", "kserve"):
        assert f"{server}:" in proc.stderr
    assert "wire" in proc.stderr and "required" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--set", "tfserving.wire.metricsPort=prometheus"],
            f'tfserving.wire.metricsPort "prometheus" is not among wire.ports ({", ".join(sorted(wire_values("tfserving")["ports"]))})',
        ),
        (
            ["--set", "kserve.wire.service=torchserve"],
            'kserve.wire.service is "torchserve", expected "kserve"',
        ),
        (
            ["--set", f"torchserve.wire.ports.{port_name('torchserve', 'rest')}.role=grpc"],
            "torchserve.wire.ports: no port with role rest",
        ),
        (["--drop-path", "tfserving"], "tfserving.wire.paths.models is missing"),
    ],
    ids=["metrics-port-not-a-port", "wire-of-another-server", "no-rest-port", "missing-path"],
)
def test_wire_guard_refuses_inconsistent_wire(
    inputs, tmp_path: Path, extra: list[str], message: str
) -> None:
    if extra[0] == "--drop-path":  # maps merge in helm: a key can only go in a whole wire file
        wires = yaml.safe_load(inputs.wire_file.read_text())
        wires[extra[1]]["wire"]["paths"]["models"] = None  # null deletes the key, the default's too
        wire_file = tmp_path / "wire.yaml"
        wire_file.write_text(yaml.safe_dump(wires))
        proc = helm(
            *template_args(
                None,
                extra=[
                    "-f",
                    str(inputs.values_file),
                    "-f",
                    str(wire_file),
                    *inputs.set_file_args(),
                ],
            ),
            check=False,
        )
        assert proc.returncode != 0
        err = proc.stderr
    else:
        err = _fails(inputs, *extra)
    assert message in err, err
    assert (
        "servecmp kind values" in err or "rest" in err
    )  # says where the wire comes from / what is missing
