"""The one parity tolerance rule, used by every artifact check (verify.py) and the built-ins'
PyTorch-vs-TF-twin check (parity.py).

Float kernels of two frameworks (or a converter's rewritten graph) differ in summation order, so
the absolute error grows with the values summed: a fixed float32 atol of 1e-4 refuses a correct
ResNet-50 port (max |d| 2.2e-4 on logits spread over 1.6). The tolerance therefore scales with
the reference output's magnitude; argmax/top-k agreement is required on top where the output
is a classification.
"""

from __future__ import annotations

import numpy as np

# Absolute tolerance per output dtype at |reference| <= 1; other dtypes (integers, bool) exact.
BASE_ATOL = {"float32": 1e-4, "float64": 1e-8, "float16": 1e-2}

RULE = (
    "pass when max |Δ| ≤ atol * max(1, max |reference|) per output (atol: float32 1e-4, "
    "float64 1e-8, float16 1e-2; other dtypes exact) and, for a classification, every row has "
    "the same argmax (and the same top-k set)"
)


def tolerance(dtype: str | np.dtype, reference: np.ndarray) -> float:
    """The largest max |Δ| allowed against ``reference`` (an output of the PyTorch reference)."""
    base = BASE_ATOL.get(str(np.dtype(dtype)), 0.0)
    ref = np.asarray(reference)
    scale = float(np.max(np.abs(ref.astype(np.float64)))) if ref.size else 1.0
    if not np.isfinite(scale):
        scale = 1.0  # a non-finite reference is caught by the |Δ| check, not hidden by the scale
    return base * max(1.0, scale)
