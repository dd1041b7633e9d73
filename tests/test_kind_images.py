"""Images of the kind path (issue 10, items 4, 7, 9): the cluster's TorchServe runs the project's
own pins; the artifacts ship only the measured version; each image is loaded onto the node that
runs it, with the image-archive fallback."""

from __future__ import annotations

import re
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from helm_util import CHART, KIND_DIR, ROOT

from servecmp.cluster import artifacts, images

TS_DOCKERFILE = KIND_DIR / "torchserve.Dockerfile"


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][^;\s]*)", d)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


# ---- item 4: TorchServe on the same stack as the local path ---------------------------------------
def test_torchserve_image_uses_the_project_pins() -> None:
    pins = _pins()
    (stage,) = images.parse_dockerfile(TS_DOCKERFILE)
    run = " ".join(stage.runs)
    for dist in ("torch", "torchserve", "torch-model-archiver"):
        assert f"{dist}=={pins[dist]}" in run, (
            f"{dist}: Dockerfile does not pin {pins[dist]} (pyproject)"
        )
    assert "download.pytorch.org/whl/cpu" in run  # the CPU wheel, as on our machines
    assert "pyyaml" in run.lower()  # the worker needs it and torchserve does not declare it
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    py = re.search(r"python:(\d+\.\d+)", stage.base)
    assert py and requires == f">={py.group(1)}", (stage.base, requires)
    assert "openjdk-17" in run
    assert stage.user == "1000:1000"


def test_chart_runs_that_image_non_root_read_only() -> None:
    pins = _pins()
    vals = yaml.safe_load((CHART / "charts" / "torchserve" / "values.yaml").read_text())
    py = re.search(r"python:(\d+\.\d+)", images.parse_dockerfile(TS_DOCKERFILE)[0].base).group(1)  # type: ignore[union-attr]
    assert vals["image"]["repository"] == "servecmp/torchserve"
    assert vals["image"]["tag"] == f"{pins['torchserve']}-py{py}-torch{pins['torch']}"
    assert vals["image"]["pullPolicy"] in ("IfNotPresent", "Never")
    assert (
        vals["securityContext"]["runAsUser"] == 1000
        and vals["securityContext"]["readOnlyRootFilesystem"]
    )
    # `servecmp kind up` builds deploy/kind/<chart>.Dockerfile and sets <chart>.image.tag to its tag
    from servecmp.cluster.commands import local_image

    repo, tag = local_image("torchserve", ROOT)  # type: ignore[misc]
    assert repo == vals["image"]["repository"] and tag.startswith(vals["image"]["tag"] + "-")
    assert local_image("tfserving", ROOT) is None  # pulled: tensorflow/serving


# ---- item 7: only the measured version ships ------------------------------------------------------
def _export(tmp: Path, model: str = "resnet") -> Path:
    ex = tmp / "export dir" / model
    (ex / "torchserve").mkdir(parents=True)
    for name, body in ((f"{model}.mar", b"v1"), (f"{model}_v2.mar", b"v2")):
        with zipfile.ZipFile(ex / "torchserve" / name, "w") as zf:  # a .mar is a zip
            zf.writestr("model.pt", body)
            zf.writestr("MAR-INF/MANIFEST.json", "{}")
    for v in ("1", "2", ".tmp-3"):
        (ex / "tfserving" / model / v / "variables").mkdir(parents=True)
        (ex / "tfserving" / model / v / "saved_model.pb").write_bytes(v.encode())
    (ex / "export.json").write_text("{}")
    return ex


def test_stage_ships_version_1_only(tmp_path: Path) -> None:
    dest = tmp_path / "staged"
    (dest / "tfserving" / "resnet" / "2").mkdir(parents=True)  # left over from an older staging
    files = artifacts.stage(_export(tmp_path), dest, "resnet")
    rel = sorted(str(p.relative_to(dest)) for p in files)
    assert rel == [
        "kserve/resnet/1/model.pt",
        "tfserving/resnet/1/saved_model.pb",
        "torchserve/resnet.mar",
    ]
    with zipfile.ZipFile(dest / "torchserve" / "resnet.mar") as zf:
        assert zf.read("model.pt") == b"v1"
    # KServe gets the very TorchScript bytes of the v1 archive TorchServe serves
    assert (dest / "kserve" / "resnet" / "1" / "model.pt").read_bytes() == b"v1"


def test_stage_refuses_a_mar_without_torchscript(tmp_path: Path) -> None:
    ex = _export(tmp_path)
    (ex / "torchserve" / "resnet.mar").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"resnet\.mar: no model\.pt inside"):
        artifacts.stage(ex, tmp_path / "staged", "resnet")


def test_check_refuses_a_second_kserve_version(tmp_path: Path) -> None:
    dest = tmp_path / "staged"
    artifacts.stage(_export(tmp_path), dest, "resnet")
    (dest / "kserve" / "resnet" / "2").mkdir()
    (dest / "kserve" / "resnet" / "2" / "model.pt").write_bytes(b"v2")
    with pytest.raises(ValueError, match=r"expected only 1/model\.pt.*loads the highest"):
        artifacts.check(dest, "resnet")


def test_check_refuses_another_version(tmp_path: Path) -> None:
    dest = tmp_path / "staged"
    artifacts.stage(_export(tmp_path), dest, "resnet")
    (dest / "tfserving" / "resnet" / "2").mkdir()
    with pytest.raises(ValueError, match=r"only version 1/.*serve the highest"):
        artifacts.check(dest, "resnet")


def test_artifacts_image_copies_the_staged_tree_only() -> None:
    # that `kind up` stages the measured version only: tests/test_kind_commands.py
    (stage,) = images.parse_dockerfile(KIND_DIR / "artifacts.Dockerfile")
    assert sorted(s for c in stage.copies for s in c.sources) == [
        "kserve/",
        "tfserving/",
        "torchserve/",
    ]


# ---- item 9: node-scoped loads, image-archive fallback ---------------------------------------------
def test_nodes_with_role_follow_kinds_naming() -> None:
    cfg = KIND_DIR / "kind-config.yaml"
    assert images.nodes_with_role(cfg, "server", "servecmp") == ["servecmp-worker"]
    assert images.nodes_with_role(cfg, "loadgen", "servecmp") == ["servecmp-worker2"]
    assert images.nodes_with_role(cfg, "monitoring", "servecmp") == ["servecmp-control-plane"]


def test_load_goes_to_the_named_nodes_only() -> None:
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    assert (
        images.load_image("servecmp/loadgen:abc", "servecmp", ["servecmp-worker2"], run=run)
        == "docker-image"
    )
    assert calls == [
        [
            "kind",
            "load",
            "docker-image",
            "--name",
            "servecmp",
            "--nodes",
            "servecmp-worker2",
            "servecmp/loadgen:abc",
        ]
    ]


def test_falls_back_to_docker_save_and_image_archive(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if cmd[:3] == ["kind", "load", "docker-image"]:
            return subprocess.CompletedProcess(
                cmd,
                1,
                "",
                'ERROR: failed to load image: command "docker exec --privileged -i servecmp-worker ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1\nctr: content digest sha256:abc: not found',
            )
        return subprocess.CompletedProcess(cmd, 0, "", "")

    how = images.load_image(
        "servecmp/torchserve:x", "servecmp", ["servecmp-worker"], run=run, tmpdir=tmp_path
    )
    assert how == "image-archive"
    save, archive = calls[1], calls[2]
    assert save[:3] == ["docker", "save", "-o"] and save[-1] == "servecmp/torchserve:x"
    assert archive[:3] == ["kind", "load", "image-archive"] and archive[-1] == save[3]
    assert archive[archive.index("--nodes") + 1] == "servecmp-worker"


def test_both_failing_names_both_errors() -> None:
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", f"{cmd[1]} broke")

    with pytest.raises(RuntimeError, match=r"(?s)load broke.*save broke"):
        images.load_image("i:1", "c", ["n"], run=run)


def test_scripts_load_images_per_node_role() -> None:
    for script in ("kind-up.sh", "kind-load.sh"):
        text = (ROOT / "scripts" / script).read_text()
        assert "kind load docker-image" not in text and "-m servecmp.cli kind " in text, script
    # which node each image goes to: tests/test_kind_commands.py (behaviour on the recording fake)
