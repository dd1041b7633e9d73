"""Deterministic "as if trained" touches for randomly initialised models.

A freshly initialised network has identity BatchNorms (mean 0, var 1) and logits dominated by
a constant offset, so every input gets the same class. Parity on such a model would not notice
a mirror that drops a BatchNorm or flips a transpose. Calibrating the BN statistics on seeded
inputs, randomising the BN affine terms and centring the logits gives non-trivial statistics
and input-dependent argmaxes, all reproducible from the seed.
"""

from __future__ import annotations

import torch
from torch import nn


def calibrate(
    model: nn.Module,
    fc: nn.Linear,
    example_shape: tuple[int, ...],
    seed: int,
    n: int = 64,
    inputs: torch.Tensor | None = None,
) -> None:
    """``inputs``: calibrate on these (the distribution the model will be fed) instead of
    ``n`` standard-normal examples of ``example_shape``."""
    g = torch.Generator().manual_seed(seed + 7919)
    x = torch.randn((n, *example_shape), generator=g) if inputs is None else inputs
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        # 1) running stats = the exact batch statistics of the calibration inputs
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch -> exactly its statistics
        model.train()
        model(x)
        for bn in bns:
            bn.momentum = 0.1
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) * 0.6 + 0.7)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
        model.eval()
        # 2) centre the logits so the class depends on the input, not on a constant offset
        logits = model(x)
        mean = logits.mean(dim=0)
        scale = 1.0 / max(float((logits - mean).std()), 1e-6)  # and give them unit spread
        fc.bias.sub_(mean).mul_(scale)
        fc.weight.mul_(scale)
