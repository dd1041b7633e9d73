"""In-process reference (PyTorch; ONNX Runtime for an ONNX-source card): seeded inputs and the
logits every served response must match."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from servecmp.models.registry import DEFAULT_SEED, get_model

if TYPE_CHECKING:
    from torch import nn


@functools.lru_cache(maxsize=8)
def torch_model(name: str, seed: int = DEFAULT_SEED) -> nn.Module:
    """The seeded eval-mode reference, built once per (name, seed) in this process (an
    ``OnnxModel`` for an ONNX-source card; ``sources.run_torch`` runs either)."""
    return get_model(name).build_torch(seed)


def seeded_inputs(name: str, n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``n`` standard-normal float32 examples shaped ``[n, *input_shape]``, reproducible from seed."""
    if n < 1:
        raise ValueError(f"n: expected a positive number of inputs, got {n}")
    spec = get_model(name)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *spec.input_shape), dtype=np.float32)


def check_batch(name: str, inputs: np.ndarray) -> np.ndarray:
    """``inputs`` as C-contiguous float32 ``[B, *input_shape]``; ValueError naming the shape otherwise."""
    spec = get_model(name)
    arr = np.asarray(inputs)
    if arr.ndim != len(spec.input_shape) + 1 or tuple(arr.shape[1:]) != spec.input_shape:
        want = ", ".join(str(d) for d in spec.input_shape)
        raise ValueError(
            f"inputs: expected shape [B, {want}] for model {name!r}, got {list(arr.shape)}"
        )
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"inputs: expected a numeric (float32) array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def expected_logits(name: str, inputs: np.ndarray, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Reference logits ``[B, num_classes]`` (float32) for ``inputs`` ``[B, *input_shape]``:
    PyTorch, or ONNX Runtime for an ONNX-source card."""
    from servecmp.models.sources import run_torch

    x = check_batch(name, inputs)
    return np.asarray(run_torch(torch_model(name, seed), [x])[0])


def expected_outputs(name: str, arrays: list[np.ndarray], seed: int | None = None) -> np.ndarray:
    """The first output of the model (any number of inputs, in the card's order) as float32."""
    from servecmp.models.sources import run_torch

    model = torch_model(name, DEFAULT_SEED if seed is None else seed)
    return np.asarray(run_torch(model, arrays)[0], dtype=np.float32)
