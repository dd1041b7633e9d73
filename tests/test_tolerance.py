"""The one parity tolerance rule (servecmp/models/tolerance.py): float tolerance scales with the
reference output's magnitude, in the artifact check (verify.compare) and the built-ins' twin check
(parity.check_parity) alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from servecmp.models.parity import check_parity
from servecmp.models.registry import DEFAULT_SEED, get_model
from servecmp.models.tolerance import tolerance
from servecmp.models.verify import compare


def test_tolerance_scales_with_the_reference_magnitude() -> None:
    small = np.array([[0.5, -0.25]], dtype=np.float32)
    spread = np.array([[1.6, -0.4]], dtype=np.float32)
    assert tolerance("float32", small) == 1e-4  # |ref| <= 1: the base atol
    assert np.isclose(tolerance("float32", spread), 1.6e-4)
    assert np.isclose(tolerance(np.dtype("float64"), spread * 100), 160e-8)
    assert tolerance("int64", np.array([[3, 4]])) == 0.0  # integers: exact
    assert tolerance("float32", np.array([[np.inf]], dtype=np.float32)) == 1e-4


def _card() -> Any:
    from servecmp.models.card import parse_card

    return parse_card(
        {
            "name": "tolmodel",
            "source": {"factory": "x:y"},
            "inputs": [{"name": "input", "shape": [None, 4]}],
            "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
        },
        Path("tolmodel.yaml"),
    )


def test_compare_passes_a_port_error_within_the_scaled_tolerance() -> None:
    # Logits spread like the ResNet-50 port's (about 2.5 here): 2.2e-4 is within 2.5e-4.
    ref = np.array([[2.5, -1.0, 0.3], [0.1, 1.9, -2.0]], dtype=np.float32)
    row = compare(_card(), "savedmodel", "tensorflow", [ref], [ref + np.float32(2.2e-4)])
    assert row.passed and np.isclose(row.atol, 2.5e-4), row.summary()
    small = ref / 4  # |ref| <= 1: the same error is refused
    row = compare(_card(), "savedmodel", "tensorflow", [small], [small + np.float32(2.2e-4)])
    assert not row.passed and row.atol == 1e-4


def test_compare_still_needs_the_same_argmax() -> None:
    ref = np.array([[2.5, 2.4999, 0.3]], dtype=np.float32)
    got = np.array([[2.4999, 2.5, 0.3]], dtype=np.float32)  # |d| 1e-4, argmax swapped
    row = compare(_card(), "savedmodel", "tensorflow", [ref], [got])
    assert not row.passed and row.argmax_agree == 0.0


class _Offset:
    """A TF-twin double answering the PyTorch logits plus a constant offset (argmax unchanged)."""

    def __init__(self, torch_model: torch.nn.Module, offset: float) -> None:
        self.torch_model, self.offset = torch_model, offset

    def serve(self, t: Any) -> dict[str, Any]:
        import tensorflow as tf

        with torch.inference_mode():
            out = self.torch_model(torch.from_numpy(t.numpy())).numpy()
        return {"logits": tf.constant(out + np.float32(self.offset))}


def test_check_parity_uses_the_scaled_rule(tmp_path: Path) -> None:
    from servecmp.models.reference import seeded_inputs

    big = _Scale(get_model("tiny").build_torch(DEFAULT_SEED), 1000.0)
    with torch.inference_mode():
        peak = float(big(torch.from_numpy(seeded_inputs("tiny", 32, DEFAULT_SEED))).abs().max())
    offset = 0.5 * 1e-4 * peak
    assert offset > 1e-4  # the fixed float32 atol would refuse it
    # golden_dir=tmp_path: no golden file, the scaled model is not the committed tiny
    ok = check_parity("tiny", torch_model=big, tf_model=_Offset(big, offset), golden_dir=tmp_path)
    assert ok.passed and ok.atol >= 1e-4 * peak, ok.summary()
    bad = check_parity(
        "tiny", torch_model=big, tf_model=_Offset(big, 3 * ok.atol), golden_dir=tmp_path
    )
    assert not bad.passed


class _Scale(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, k: float) -> None:
        super().__init__()
        self.inner, self.k = inner, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.k
