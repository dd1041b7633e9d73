"""The model registry and the two models' PyTorch definitions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from servecmp.models.reference import check_batch, expected_logits, seeded_inputs
from servecmp.models.registry import UnknownModelError, get_model, model_names


def test_names_and_specs() -> None:
    assert set(model_names()) >= {"resnet", "tiny"}
    for name in model_names():
        spec = get_model(name)
        assert spec.name == name
        assert (spec.input_name, spec.output_name) == ("input", "logits")
        assert len(spec.input_shape) == 3 and spec.num_classes >= 2


def test_unknown_model_lists_allowed_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        get_model("resnet50")
    assert "resnet50" in str(err.value) and "resnet" in str(err.value) and "tiny" in str(err.value)


def test_registry_import_is_cheap() -> None:
    # The experiment schema validates model names: that must not drag torch/tensorflow in.
    code = (
        "import sys; from servecmp.models.registry import model_names; model_names(); "
        "heavy = [m for m in ('torch', 'tensorflow') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reference_does_not_import_tensorflow() -> None:
    # The load engine calls expected_logits in Locust processes: no TF there.
    code = (
        "import sys; from servecmp.models.reference import expected_logits, seeded_inputs; "
        "expected_logits('tiny', seeded_inputs('tiny', 2)); assert 'tensorflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["resnet", "tiny"])
def test_build_torch_is_seeded_and_in_eval_mode(name: str) -> None:
    spec = get_model(name)
    a, b, c = spec.build_torch(7), spec.build_torch(7), spec.build_torch(8)
    assert not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    x = torch.from_numpy(seeded_inputs(name, 3, 0))
    with torch.no_grad():
        assert tuple(a(x).shape) == (3, spec.num_classes)


@pytest.mark.heavy  # builds the full-size resnet (tests/conftest.py: resnet is heavy)
def test_resnet_is_realistic() -> None:
    m = get_model("resnet").build_torch(1234)
    assert sum(p.numel() for p in m.parameters()) > 1_000_000
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bns
    # Non-trivial statistics, so parity exercises the BatchNorm transfer.
    for bn in bns:
        assert bn.running_mean.abs().max() > 1e-3
        assert (bn.running_var - 1).abs().max() > 1e-3
    # Input-dependent predictions: several classes over a few random inputs.
    logits = expected_logits("resnet", seeded_inputs("resnet", 32, 3), 1234)
    assert len(set(logits.argmax(axis=1).tolist())) >= 3


def test_expected_logits_matches_model_and_checks_shape() -> None:
    x = seeded_inputs("tiny", 4, 11)
    m = get_model("tiny").build_torch(5)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(expected_logits("tiny", x, 5), want)
    with pytest.raises(ValueError, match=r"inputs: expected shape \[B, 3, 8, 8\].*got \[3, 8, 8\]"):
        expected_logits("tiny", x[0])
    with pytest.raises(ValueError, match="numeric"):
        check_batch("tiny", np.full((1, 3, 8, 8), "a"))
