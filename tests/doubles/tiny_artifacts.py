"""A tiny linear model (3x8x8 -> 10) as TorchScript and as a SavedModel, from the same seeded
weights, plus its expected logits in numpy. Test-only stand-in until the models package's
export is available; the clients never see anything but the artifacts and the wire."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_SHAPE = (3, 8, 8)
NUM_CLASSES = 10
FEATURES = 3 * 8 * 8


@dataclass(frozen=True)
class TinySpec:
    name: str = "tiny"
    input_shape: tuple[int, ...] = INPUT_SHAPE
    num_classes: int = NUM_CLASSES
    input_name: str = "input"
    output_name: str = "logits"


@dataclass(frozen=True)
class TinyWeights:
    w: np.ndarray  # [FEATURES, NUM_CLASSES]
    b: np.ndarray  # [NUM_CLASSES]

    @classmethod
    def seeded(cls, seed: int = 7) -> TinyWeights:
        rng = np.random.default_rng(seed)
        w = (rng.standard_normal((FEATURES, NUM_CLASSES)) * 0.05).astype(np.float32)
        b = (rng.standard_normal(NUM_CLASSES) * 0.1).astype(np.float32)
        return cls(w, b)

    def logits(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1).astype(np.float64)
        return (flat @ self.w.astype(np.float64) + self.b).astype(np.float32)


def write_torchscript(weights: TinyWeights, path: Path) -> Path:
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(FEATURES, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(x, 1))

    m = Tiny()
    with torch.no_grad():
        m.fc.weight.copy_(torch.from_numpy(weights.w.T.copy()))
        m.fc.bias.copy_(torch.from_numpy(weights.b))
    torch.jit.script(m.eval()).save(str(path))
    return path


def write_savedmodel(weights: TinyWeights, path: Path) -> Path:
    """SavedModel with ``serving_default`` (float32 ``input`` [N,3,8,8] -> ``logits``) and
    ``serving_b64`` (DT_STRING ``input`` [N], each raw little-endian float32 [3,8,8])."""
    import tensorflow as tf

    class TFTiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(weights.w, trainable=False)
            self.b = tf.Variable(weights.b, trainable=False)

        def _logits(self, x: tf.Tensor) -> tf.Tensor:
            return tf.matmul(tf.reshape(x, [-1, FEATURES]), self.w) + self.b

        @tf.function(
            input_signature=[tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="input")]
        )
        def serve(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"logits": self._logits(input)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="input")])
        def serve_b64(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
            x = tf.io.decode_raw(input, tf.float32, little_endian=True)
            return {"logits": self._logits(tf.reshape(x, [-1, *INPUT_SHAPE]))}

    mod = TFTiny()
    tf.saved_model.save(
        mod, str(path), signatures={"serving_default": mod.serve, "serving_b64": mod.serve_b64}
    )
    return path


def write_slow_torchscript(
    weights: TinyWeights, path: Path, matmuls: int = 8, size: int = 192
) -> Path:
    """The tiny model plus ``matmuls`` products of ``size`` x ``size`` matrices per call: the same
    logits, but milliseconds of compute (so queueing for a model instance is measurable)."""
    import torch

    class SlowTiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(FEATURES, NUM_CLASSES)
            self.m = torch.nn.Parameter(torch.eye(size) * 0.5, requires_grad=False)
            self.n = matmuls

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.m
            for _ in range(self.n):
                z = torch.tanh(z @ self.m)
            return self.fc(torch.flatten(x, 1)) + 0.0 * z.sum()

    m = SlowTiny()
    with torch.no_grad():
        m.fc.weight.copy_(torch.from_numpy(weights.w.T.copy()))
        m.fc.bias.copy_(torch.from_numpy(weights.b))
    torch.jit.script(m.eval()).save(str(path))
    return path
