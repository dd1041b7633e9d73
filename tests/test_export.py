"""Packaging for both servers: the .mar, the SavedModel and the export record."""

from __future__ import annotations

import json
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import torch

from servecmp.cli import main
from servecmp.models.export import artifacts, export_model, read_records, seed_for_version
from servecmp.models.parity import check_parity
from servecmp.models.reference import expected_logits, seeded_inputs
from servecmp.models.registry import DEFAULT_SEED, UnknownModelError, get_model


@pytest.mark.parametrize("name", ["resnet", "tiny"])
def test_mar_contains_handler_and_torchscript(
    name: str, exported_model: Callable[[str], Path], tmp_path: Path
) -> None:
    art = artifacts(name, exported_model(name))
    with zipfile.ZipFile(art.mar) as z:
        names = set(z.namelist())
        assert {"handler.py", "model.pt", "model_spec.json", "MAR-INF/MANIFEST.json"} <= names
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
        spec = json.loads(z.read("model_spec.json"))
        z.extract("model.pt", tmp_path)
    assert manifest["model"]["modelName"] == name and manifest["model"]["modelVersion"] == "1.0"
    assert manifest["model"]["handler"] == "handler.py"
    assert manifest["model"]["serializedFile"] == "model.pt"
    assert spec["input_shape"] == list(get_model(name).input_shape)
    # The TorchScript takes any batch size (traced with 2) and computes the reference function.
    ts = torch.jit.load(str(tmp_path / "model.pt"))
    x = seeded_inputs(name, 3, 21)
    with torch.no_grad():
        got = ts(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected_logits(name, x, DEFAULT_SEED), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["resnet", "tiny"])
def test_savedmodel_signature_and_parity(name: str, exported_model: Callable[[str], Path]) -> None:
    art = artifacts(name, exported_model(name))
    assert (art.savedmodel / "saved_model.pb").is_file() and art.savedmodel.name == "1"
    loaded = tf.saved_model.load(str(art.savedmodel))
    sig = loaded.signatures["serving_default"]
    _, inputs = sig.structured_input_signature
    assert list(inputs) == ["input"]
    assert inputs["input"].dtype == tf.float32
    assert inputs["input"].shape.as_list() == [None, *get_model(name).input_shape]
    assert list(sig.structured_outputs) == ["logits"]
    report = check_parity(name, tf_model=loaded)  # the loaded SavedModel vs PyTorch
    assert report.passed, report.summary()


def test_savedmodel_b64_signature(exported_model: Callable[[str], Path]) -> None:
    loaded = tf.saved_model.load(str(artifacts("tiny", exported_model("tiny")).savedmodel))
    x = seeded_inputs("tiny", 2, 5)
    raw = tf.constant([row.astype("<f4").tobytes() for row in x])
    got = loaded.signatures["serving_b64"](input=raw)["logits"].numpy()
    np.testing.assert_allclose(got, expected_logits("tiny", x), atol=1e-4, rtol=0)


def test_export_record(exported_model: Callable[[str], Path]) -> None:
    root = exported_model("tiny")
    art = artifacts("tiny", root)
    rec = read_records("tiny", root)[1]
    assert rec["seed"] == DEFAULT_SEED and rec["version"] == 1
    ts, tfs = rec["torchserve"], rec["tfserving"]
    assert ts["artifact"] == str(art.mar) and ts["bytes"] == art.mar.stat().st_size
    # recorded commands are shell-quoted (paths may hold spaces): shlex.split gives the argv back
    assert any(
        shlex.split(step)[0].endswith("torch-model-archiver") and "--version 1.0" in step
        for step in ts["steps"]
    )
    assert shlex.split(ts["steps"][-1]) == ["mv", "tiny.mar", str(art.mar)]
    assert shlex.split(tfs["steps"][-1]) == [
        "mv",
        f".tmp-{art.savedmodel.name}",
        str(art.savedmodel),
    ]
    assert tfs["artifact"] == str(art.savedmodel) and tfs["bytes"] > 0
    assert any("tf.saved_model.save" in step for step in tfs["steps"])
    assert ts["seconds"] > 0 and tfs["seconds"] > 0


def test_version_two_has_other_weights_and_keeps_version_one(tmp_path: Path) -> None:
    v1 = export_model("tiny", tmp_path)
    v2 = export_model("tiny", tmp_path, seed=seed_for_version(DEFAULT_SEED, 2), version=2)
    a1, a2 = artifacts("tiny", tmp_path, 1), artifacts("tiny", tmp_path, 2)
    assert a2.mar.name == "tiny_v2.mar" and a2.model_store == a1.model_store
    assert a1.mar.is_file() and a2.mar.is_file()
    with zipfile.ZipFile(a2.mar) as z:
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))["model"]
    assert (manifest["modelName"], manifest["modelVersion"]) == ("tiny", "2.0")
    assert sorted(p.name for p in a1.tfserving_base.iterdir()) == ["1", "2"]  # no temp dirs left
    assert set(read_records("tiny", tmp_path)) == {1, 2}
    assert v2.seed != v1.seed
    x = seeded_inputs("tiny", 2, 9)
    out2 = tf.saved_model.load(str(a2.savedmodel)).signatures["serving_default"](
        input=tf.constant(x)
    )
    np.testing.assert_allclose(
        out2["logits"].numpy(), expected_logits("tiny", x, v2.seed), atol=1e-4
    )
    assert (
        np.abs(expected_logits("tiny", x, v2.seed) - expected_logits("tiny", x, v1.seed)).max()
        > 1e-2
    )


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"allowed: a built-in \(resnet, tiny\)"):
        artifacts("nope", tmp_path)
    with pytest.raises(ValueError, match="version: expected a positive integer, got 0"):
        artifacts("tiny", tmp_path, version=0)
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "export.json").write_text("[]")
    with pytest.raises(Exception, match=r"export\.json: expected"):
        read_records("tiny", tmp_path)


def test_export_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--out", str(tmp_path), "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "parity: PASS savedmodel (tensorflow)" in out and "parity: PASS torchserve_mar" in out
    assert artifacts("tiny", tmp_path).mar.is_file()
