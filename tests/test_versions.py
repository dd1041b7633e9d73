"""One pin for TF Serving and the TensorFlow that exports for it (servecmp.versions): every
other place that names a version must agree, and the exporter is never newer than the server."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from servecmp import versions

ROOT = Path(__file__).resolve().parents[1]
SERVING_API_PINNED_IN = (
    "scripts/setup.sh",
    ".github/workflows/tfserving-local.yml",
    ".github/workflows/kind-e2e.yml",
    "deploy/kind/loadgen.Dockerfile",
)


def _release(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def test_exporter_is_not_newer_than_the_server() -> None:
    assert _release(versions.TENSORFLOW_EXPORTER_VERSION) <= _release(versions.TF_SERVING_VERSION)


def test_pyproject_pins_the_exporter() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (tf,) = [d for d in deps if d.startswith("tensorflow-cpu")]
    assert tf == f"tensorflow-cpu=={versions.TENSORFLOW_EXPORTER_VERSION}", tf


@pytest.mark.parametrize("path", SERVING_API_PINNED_IN)
def test_every_install_of_the_serving_api_uses_the_pin(path: str) -> None:
    found = re.findall(r"tensorflow-serving-api==([\w.]+)", (ROOT / path).read_text())
    assert found, f"{path} no longer installs tensorflow-serving-api"
    assert set(found) == {versions.TF_SERVING_API_VERSION}, (path, found)


def test_chart_image_is_the_pinned_server() -> None:
    chart = ROOT / "helm/servecmp/charts/tfserving"
    img = yaml.safe_load((chart / "values.yaml").read_text())["image"]
    assert (img["repository"], img["tag"]) == (
        versions.TF_SERVING_IMAGE_REPOSITORY,
        versions.TF_SERVING_VERSION,
    )
    assert (
        yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
        == versions.TF_SERVING_VERSION
    )


def test_local_docker_runs_use_the_pinned_image() -> None:
    from servecmp.servers.tfserving.local import pinned_image

    assert pinned_image() == f"tensorflow/serving:{versions.TF_SERVING_VERSION}"


def test_no_other_tf_serving_image_tag_is_named() -> None:
    """Docs and workflows name the image with the pinned tag only (tests hold fixture data)."""
    bad = []
    for path in [
        *ROOT.glob("*.md"),
        *ROOT.glob("helm/**/*.md"),
        *ROOT.glob("helm/**/*.yaml"),
        *ROOT.glob(".github/workflows/*.yml"),
        *ROOT.glob("docs/*.md"),
    ]:
        for tag in re.findall(r"tensorflow/serving:([\w.-]+)", path.read_text()):
            if tag != versions.TF_SERVING_VERSION:
                bad.append(f"{path.relative_to(ROOT)}: {tag}")
    assert not bad, bad


def test_installed_exporter_matches_the_pin() -> None:
    try:
        installed = metadata.version("tensorflow-cpu")
    except metadata.PackageNotFoundError:
        pytest.skip("tensorflow-cpu is not installed (run scripts/setup.sh)")
    assert installed == versions.TENSORFLOW_EXPORTER_VERSION


def test_version_output_of_the_binary_is_parsed() -> None:
    # main.cc (2.20.0): "TensorFlow ModelServer: " << TF_Serving_Version() << "\n"
    #                   "TensorFlow Library: " << TF_Version()
    out = "TensorFlow ModelServer: 2.19.1-rc0+dev.sha.1b2c3d\nTensorFlow Library: 2.19.0\n"
    assert versions.release_of(out) == "2.19.1"
    assert versions.release_of("garbage") is None


@pytest.mark.parametrize(
    "path", sorted((ROOT / ".github/workflows").glob("*.yml")), ids=lambda p: p.name
)
def test_workflows_update_apt_before_installing(path: Path) -> None:
    """A hosted runner's apt lists are stale: `apt-get install` without `apt-get update` in the
    same step fails when a package version rotates out of the mirror."""
    for job in yaml.safe_load(path.read_text())["jobs"].values():
        for step in job.get("steps", []):
            run = step.get("run", "")
            if "apt-get install" in run:
                assert "apt-get update" in run.split("apt-get install")[0], (path.name, step)


def test_triton_setup_installs_the_pins() -> None:
    """Triton's own venv: the wheel bundling Triton 2.51.0, the CPU torch and numpy < 2."""
    setup = (ROOT / "scripts/setup-triton.sh").read_text()
    for pkg, pin in (
        ("nvidia-pytriton", versions.PYTRITON_VERSION),
        ("torch", versions.TRITON_TORCH_VERSION),
        ("numpy", versions.TRITON_NUMPY_VERSION),
    ):
        assert set(re.findall(rf"{pkg}==([\w.]+)", setup)) == {pin}, pkg
    assert int(versions.TRITON_NUMPY_VERSION.split(".")[0]) < 2  # numpy 2 fails every response


def test_ray_serve_is_installed_at_the_pin_everywhere() -> None:
    """scripts/setup-ray.sh (.venv-ray) and the cluster image install servecmp/versions.py's pin."""
    from servecmp.versions import RAY_VERSION

    root = Path(__file__).resolve().parents[1]
    for path in ("scripts/setup-ray.sh", "deploy/kind/rayserve.Dockerfile"):
        text = (root / path).read_text()
        assert f"ray[serve]=={RAY_VERSION}" in text, path
        assert "torch==2.13.0" in text, path  # the CPU wheel: any other pin pulls CUDA


def test_port_venv_installs_the_pinned_onnx2tf_with_a_tf_no_newer_than_the_server() -> None:
    script = (ROOT / "scripts/setup-port.sh").read_text()
    assert re.findall(r"onnx2tf==([\w.]+)", script) == [versions.ONNX2TF_VERSION]
    assert re.findall(r"tf.__version__ == '([\w.]+)'", script) == [versions.PORT_TENSORFLOW_VERSION]
    assert _release(versions.PORT_TENSORFLOW_VERSION) <= _release(versions.TF_SERVING_VERSION)
    assert "bash scripts/setup-port.sh" in (ROOT / "scripts/setup.sh").read_text()


def test_onnxruntime_is_installed_at_the_pin_wherever_an_onnx_source_runs() -> None:
    """The reference/baseline venv (pyproject), KServe, Triton and Ray Serve's venvs and the
    kind path's server images all take servecmp/versions.py's ONNX Runtime pin."""
    pin = versions.ONNXRUNTIME_VERSION
    for path in (
        "pyproject.toml",
        "scripts/setup.sh",
        "scripts/setup-triton.sh",
        "scripts/setup-ray.sh",
        "deploy/kind/torchserve.Dockerfile",
        "deploy/kind/kserve.Dockerfile",
        "deploy/kind/triton.Dockerfile",
        "deploy/kind/rayserve.Dockerfile",
    ):
        found = set(re.findall(r"onnxruntime==([\w.]+)", (ROOT / path).read_text()))
        assert found == {pin}, path
