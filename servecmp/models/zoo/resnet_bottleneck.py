"""A ResNet-50-sized CNN (bottleneck blocks 3-4-6-3, 1000 classes) on 3x224x224, without torchvision.

The layer plan is the standard ResNet-50 v1.5 (stride on the 3x3 conv of each bottleneck):
25,557,032 parameters, 4.1 G multiply-adds per image.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (3, 224, 224)
NUM_CLASSES = 1000
# (blocks, width) per stage; a bottleneck's output has 4 x width channels
STAGES: tuple[tuple[int, int], ...] = ((3, 64), (4, 128), (6, 256), (3, 512))
EXPANSION = 4


class Bottleneck(nn.Module):
    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * EXPANSION
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        s = x if self.downsample is None else self.downsample(x)
        return torch.relu(y + s)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(INPUT_SHAPE[0], 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers: list[nn.Module] = []
        c = 64
        for i, (blocks, width) in enumerate(STAGES):
            for b in range(blocks):
                layers.append(Bottleneck(c, width, 2 if (b == 0 and i > 0) else 1))
                c = width * EXPANSION
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        y = self.layers(y)
        y = torch.mean(y, dim=(2, 3))  # global average pool
        return self.fc(y)
