"""Tiny model: one linear layer on a 3x8x8 input. Its compute is microseconds, so a served
request's latency is almost all serving overhead (HTTP/gRPC, (de)serialisation, queues)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

INPUT_SHAPE = (3, 8, 8)
NUM_CLASSES = 10
FEATURES = INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2]


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(FEATURES, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


def build_torch(seed: int) -> Tiny:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Tiny()
    return model.eval()


def build_tf(torch_model: Tiny) -> Any:
    """The same function in TensorFlow, weights copied from PyTorch."""
    import tensorflow as tf

    from servecmp.models import tf_mirror as tfm

    fc = tfm.Linear(torch_model.fc, "fc")

    def forward(x: tf.Tensor) -> tf.Tensor:
        # Flatten in NCHW order, exactly like torch.flatten on the NCHW tensor (no transpose).
        return fc(tf.reshape(x, [-1, FEATURES]))

    return tfm.Mirror("tiny", INPUT_SHAPE, [fc], forward)
