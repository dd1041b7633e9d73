"""Default model: a small ResNet (basic blocks) classifying 3x64x64 images into 10 classes.

~1.2 M parameters: big enough that the model math, not the server, dominates a request.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from servecmp.models.calibration import calibrate

INPUT_SHAPE = (3, 64, 64)
NUM_CLASSES = 10
STEM = 32
# (out_channels, stride) per stage, one basic block each
STAGES: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (128, 2), (256, 2))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1: nn.Conv2d = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1: nn.BatchNorm2d = nn.BatchNorm2d(c_out)
        self.conv2: nn.Conv2d = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2: nn.BatchNorm2d = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(y + s)


class ResNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(INPUT_SHAPE[0], STEM, 3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(STEM)
        blocks = []
        c = STEM
        for c_out, stride in STAGES:
            blocks.append(BasicBlock(c, c_out, stride))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.stem(x)))
        y = self.blocks(y)
        y = torch.mean(y, dim=(2, 3))  # global average pool
        return self.fc(y)


def build_torch(seed: int) -> ResNet:
    """The seeded PyTorch model in eval mode (same seed -> bit-identical weights)."""
    with torch.random.fork_rng():  # don't disturb the caller's global RNG
        torch.manual_seed(seed)
        model = ResNet()
    calibrate(model, model.fc, INPUT_SHAPE, seed)
    return model.eval()


def build_tf(torch_model: ResNet) -> Any:
    """The same function in TensorFlow (a ``tf_mirror.Mirror``), weights copied from PyTorch."""
    import tensorflow as tf

    from servecmp.models import tf_mirror as tfm

    m = torch_model
    stem, bn = tfm.Conv2d(m.stem, "stem"), tfm.BatchNorm(m.bn, "bn")
    layers: list[tf.Module] = [stem, bn]
    blocks = []
    for i, block_module in enumerate(m.blocks):
        b: BasicBlock = block_module  # type: ignore[assignment]  # Sequential yields Module
        parts = [
            tfm.Conv2d(b.conv1, f"b{i}_conv1"),
            tfm.BatchNorm(b.bn1, f"b{i}_bn1"),
            tfm.Conv2d(b.conv2, f"b{i}_conv2"),
            tfm.BatchNorm(b.bn2, f"b{i}_bn2"),
        ]
        if b.shortcut is not None:
            sc_conv, sc_bn = cast(nn.Conv2d, b.shortcut[0]), cast(nn.BatchNorm2d, b.shortcut[1])
            parts += [tfm.Conv2d(sc_conv, f"b{i}_sc_conv"), tfm.BatchNorm(sc_bn, f"b{i}_sc_bn")]
        layers += parts
        blocks.append(parts)
    fc = tfm.Linear(m.fc, "fc")
    layers.append(fc)

    def block(parts: list[Any], x: tf.Tensor) -> tf.Tensor:
        conv1, bn1, conv2, bn2, *shortcut = parts
        y = tf.nn.relu(bn1(conv1(x)))
        y = bn2(conv2(y))
        s = shortcut[1](shortcut[0](x)) if shortcut else x
        return tf.nn.relu(y + s)

    def forward(x: tf.Tensor) -> tf.Tensor:
        x = tf.transpose(x, [0, 2, 3, 1])  # NCHW -> NHWC: TF's CPU convs only support NHWC
        y = tf.nn.relu(bn(stem(x)))
        for parts in blocks:
            y = block(parts, y)
        return fc(tf.reduce_mean(y, axis=[1, 2]))

    return tfm.Mirror("resnet", INPUT_SHAPE, layers, forward)
