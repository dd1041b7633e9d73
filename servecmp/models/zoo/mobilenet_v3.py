"""A MobileNetV3-Small-sized CNN on 3x224x224, without torchvision.

The block table is the paper's MobileNetV3-Small (Howard et al. 2019, table 2), with the
classifier head of the reference implementation: 2,542,856 parameters, ~0.06 G multiply-adds.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (3, 224, 224)
NUM_CLASSES = 1000
LAST_CHANNEL = 1024
BN_EPS = 0.001
# (kernel, expanded, out, squeeze-excite, hard-swish, stride) per inverted-residual block
BLOCKS: tuple[tuple[int, int, int, bool, bool, int], ...] = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


def _divisible(v: float, d: int = 8) -> int:
    """Round channels to a multiple of d, never below 90 % of v (the reference rounding)."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int, groups: int, act: nn.Module | None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
    ]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        squeeze = _divisible(c / 4)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.mean(x, dim=(2, 3), keepdim=True)
        s = nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(s))))
        return x * s


class InvertedResidual(nn.Module):
    def __init__(
        self, c_in: int, k: int, expanded: int, c_out: int, se: bool, hs: bool, stride: int
    ) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(_conv_bn(c_in, expanded, 1, 1, 1, act()))
        layers.append(_conv_bn(expanded, expanded, k, stride, expanded, act()))
        if se:
            layers.append(SqueezeExcite(expanded))
        layers.append(_conv_bn(expanded, c_out, 1, 1, 1, None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Small(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(INPUT_SHAPE[0], 16, 3, 2, 1, nn.Hardswish())]
        c = 16
        for k, expanded, c_out, se, hs, stride in BLOCKS:
            layers.append(InvertedResidual(c, k, expanded, c_out, se, hs, stride))
            c = c_out
        layers.append(_conv_bn(c, 6 * c, 1, 1, 1, nn.Hardswish()))
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(6 * c, LAST_CHANNEL)
        self.fc = nn.Linear(LAST_CHANNEL, num_classes)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.mean(self.features(x), dim=(2, 3))
        y = self.dropout(nn.functional.hardswish(self.fc1(y)))
        return self.fc(y)
