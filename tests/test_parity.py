"""PyTorch vs TensorFlow parity for every registered model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from servecmp.cli import main
from servecmp.models.parity import (
    ATOL,
    GOLDEN_N,
    check_parity,
    golden_path,
    load_golden,
    write_golden,
)
from servecmp.models.registry import DEFAULT_SEED, get_model, model_names


@pytest.fixture(scope="module")
def pair() -> dict[str, tuple[torch.nn.Module, object]]:
    out = {}
    for name in model_names():
        spec = get_model(name)
        m = spec.build_torch(DEFAULT_SEED)
        out[name] = (m, spec.build_tf(m))
    return out


@pytest.mark.parametrize("name", ["resnet", "tiny"])
def test_parity_passes(name: str, pair: dict) -> None:
    torch_model, tf_model = pair[name]
    report = check_parity(name, torch_model=torch_model, tf_model=tf_model)
    assert report.passed, report.summary()
    assert report.n >= 32 + GOLDEN_N and report.golden_n == GOLDEN_N
    assert report.max_abs_diff <= ATOL and report.argmax_equal
    assert report.golden_max_abs_diff is not None and report.golden_max_abs_diff <= ATOL


@pytest.mark.parametrize(("name", "param"), [("resnet", "stem.weight"), ("tiny", "fc.weight")])
def test_one_perturbed_weight_fails_parity(name: str, param: str, pair: dict) -> None:
    _torch_model, tf_model = pair[name]
    perturbed = get_model(name).build_torch(DEFAULT_SEED)
    with torch.no_grad():
        perturbed.get_parameter(param).view(-1)[0] += 0.5  # ONE weight
    report = check_parity(name, torch_model=perturbed, tf_model=tf_model)
    assert not report.passed
    assert report.max_abs_diff > ATOL
    assert "FAIL" in report.summary()


def test_batchnorm_statistics_are_checked(pair: dict) -> None:
    # A mirror that ignored running statistics would still pass if they were trivial.
    _torch_model, tf_model = pair["resnet"]
    perturbed = get_model("resnet").build_torch(DEFAULT_SEED)
    with torch.no_grad():
        perturbed.blocks[1].bn1.running_mean[0] += 0.5
    assert not check_parity("resnet", torch_model=perturbed, tf_model=tf_model).passed


def test_committed_golden_files_are_well_formed() -> None:
    for name in model_names():
        golden = load_golden(name)
        assert golden is not None, f"{golden_path(name)} missing: run servecmp golden"
        x, logits, seed = golden
        assert x.shape == (GOLDEN_N, *get_model(name).input_shape)
        assert logits.shape == (GOLDEN_N, get_model(name).num_classes) and seed == DEFAULT_SEED


def test_golden_drift_fails(tmp_path: Path, pair: dict) -> None:
    torch_model, tf_model = pair["tiny"]
    path = write_golden("tiny", DEFAULT_SEED, tmp_path)
    ok = check_parity("tiny", torch_model=torch_model, tf_model=tf_model, golden_dir=tmp_path)
    assert ok.passed and ok.golden_max_abs_diff == 0.0
    with np.load(path) as z:
        arrays = dict(z)
    arrays["logits"] = arrays["logits"] + 1e-3  # as if build_torch had changed since
    np.savez(path, **arrays)
    drift = check_parity("tiny", torch_model=torch_model, tf_model=tf_model, golden_dir=tmp_path)
    assert not drift.passed and drift.golden_max_abs_diff == pytest.approx(1e-3, rel=1e-2)


def test_malformed_golden_names_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "tiny.npz", inputs=np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"tiny\.npz: missing array\(s\) \['logits', 'seed'\]"):
        load_golden("tiny", tmp_path)


def test_parity_cli_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parity", "--model", "tiny", "-n", "8"]) == 0
    assert "PASS tiny" in capsys.readouterr().out
