"""(Imported only when a TF model is built: keeps tensorflow out of PyTorch-only processes.)

Helpers that copy PyTorch layers into TensorFlow constants and apply them the same way.

TF's CPU conv kernels only support NHWC, so mirrors transpose the NCHW input once and keep
PyTorch's semantics explicitly: symmetric padding (TF "SAME" pads stride-2 convs asymmetrically,
which would shift every window) and eval-mode BatchNorm with the running statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import torch
from torch import nn

SIGNATURE_B64 = "serving_b64"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


class Conv2d(tf.Module):
    """A PyTorch ``nn.Conv2d`` (no groups/dilation) applied to NHWC tensors."""

    def __init__(self, conv: nn.Conv2d, name: str) -> None:
        super().__init__(name=name)
        if conv.groups != 1 or conv.dilation != (1, 1) or not isinstance(conv.padding, tuple):
            raise ValueError(f"{name}: only plain convs (groups=1, dilation=1, int padding) mirror")
        # torch [out, in, kh, kw] -> tf [kh, kw, in, out]
        self.kernel = tf.Variable(_np(conv.weight).transpose(2, 3, 1, 0), trainable=False)
        self.bias = tf.Variable(_np(conv.bias), trainable=False) if conv.bias is not None else None
        self.strides = [1, conv.stride[0], conv.stride[1], 1]
        ph, pw = conv.padding
        self.padding = [[0, 0], [ph, ph], [pw, pw], [0, 0]]

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.nn.conv2d(x, self.kernel, strides=self.strides, padding=self.padding)
        return y if self.bias is None else tf.nn.bias_add(y, self.bias)


class BatchNorm(tf.Module):
    """Eval-mode ``nn.BatchNorm2d`` (running statistics) on the last (channel) axis."""

    def __init__(self, bn: nn.BatchNorm2d, name: str) -> None:
        super().__init__(name=name)
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(f"{name}: BatchNorm without running statistics cannot be mirrored")
        self.mean = tf.Variable(_np(bn.running_mean), trainable=False)
        self.var = tf.Variable(_np(bn.running_var), trainable=False)
        self.gamma = tf.Variable(_np(bn.weight), trainable=False)
        self.beta = tf.Variable(_np(bn.bias), trainable=False)
        self.eps = float(bn.eps)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.batch_normalization(x, self.mean, self.var, self.beta, self.gamma, self.eps)


class Linear(tf.Module):
    """``nn.Linear``: y = x W^T + b."""

    def __init__(self, fc: nn.Linear, name: str) -> None:
        super().__init__(name=name)
        self.w = tf.Variable(_np(fc.weight).T, trainable=False)
        self.b = tf.Variable(_np(fc.bias), trainable=False) if fc.bias is not None else None

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = tf.matmul(x, self.w)
        return y if self.b is None else y + self.b


class Mirror(tf.Module):
    """The served TF model: ``serve`` takes NCHW float32 ``input`` and returns ``{"logits": ...}``.

    ``forward`` is plain Python over the mirrored ``layers`` (tracked here so their variables
    are saved); wrapping it in a signature-fixed tf.function names the SavedModel's input and
    output the way both servers expose them.
    """

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, ...],
        layers: list[tf.Module],
        forward: Callable[[tf.Tensor], tf.Tensor],
    ) -> None:
        super().__init__(name=name)
        self.layers = layers
        self._forward = forward
        self.input_shape = list(input_shape)
        spec = tf.TensorSpec([None, *input_shape], tf.float32, name="input")
        self.serve = tf.function(self._serve, input_signature=[spec])
        # TF Serving's binary-in-JSON form ({"input": {"b64": ...}} per instance): one raw
        # little-endian float32 example per string (the "b64" payload encoding).
        raw = tf.TensorSpec([None], tf.string, name="input")
        self.serve_b64 = tf.function(self._serve_b64, input_signature=[raw])

    def _serve(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"logits": self._forward(input)}

    def _serve_b64(self, input: tf.Tensor) -> dict[str, tf.Tensor]:
        x = tf.io.decode_raw(input, tf.float32, little_endian=True)
        return {"logits": self._forward(tf.reshape(x, [-1, *self.input_shape]))}

    def export_signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """What tf.saved_model.save exports: ``serving_default`` and ``serving_b64``."""
        return {
            "serving_default": self.serve.get_concrete_function(),
            SIGNATURE_B64: self.serve_b64.get_concrete_function(),
        }
