"""Realistic-size built-ins with random weights from a fixed seed (nothing is downloaded).

``resnet50()``, ``mobilenet_v3_small()`` and ``bert_base()`` return seeded ``nn.Module``s in
eval mode; ``ZOO`` holds each one's input spec, outputs and nominal size. ``parameter_count``
and ``flops`` measure a built module (``torch.utils.flop_counter``, which counts 2 FLOPs per
multiply-add: ResNet-50's "4.1 GFLOPs" of the literature are multiply-adds, 8.2 G here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from servecmp.models.calibration import calibrate
from servecmp.models.zoo import bert, mobilenet_v3, resnet_bottleneck

DEFAULT_SEED = 1234
# Seeded inputs used to set the BatchNorm statistics and centre the logits (see calibration.py);
# few, because a ResNet-50 forward pass costs ~8 GFLOPs per image.
CALIBRATION_N = 8


@dataclass(frozen=True)
class ZooTensor:
    """One input of a zoo model; shape[0] is None, the dynamic batch axis.

    Generated values are uniform in [low, high): integers for integer dtypes (token ids below
    the vocabulary, a 0/1 mask), floats otherwise."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    factory: Callable[[int], nn.Module]
    inputs: tuple[ZooTensor, ...]
    outputs: tuple[str, ...]
    nominal_parameters: int  # the reference architecture's published count
    nominal_gmacs: float  # multiply-adds per example, as usually quoted


def _seeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    with torch.random.fork_rng():  # don't disturb the caller's global RNG
        torch.manual_seed(seed)
        return build()


def _calibrate(model: nn.Module, fc: nn.Linear, spec: ZooModel, seed: int) -> None:
    """BatchNorm statistics and logit centring on the inputs the spec generates."""
    (x,) = example_inputs(spec, CALIBRATION_N, seed + 7919)
    calibrate(model, fc, tuple(x.shape[1:]), seed, inputs=x)


def resnet50(seed: int = DEFAULT_SEED) -> nn.Module:
    model = _seeded(resnet_bottleneck.ResNet50, seed)
    assert isinstance(model, resnet_bottleneck.ResNet50)
    _calibrate(model, model.fc, ZOO["resnet50"], seed)
    return model.eval()


def mobilenet_v3_small(seed: int = DEFAULT_SEED) -> nn.Module:
    model = _seeded(mobilenet_v3.MobileNetV3Small, seed)
    assert isinstance(model, mobilenet_v3.MobileNetV3Small)
    _calibrate(model, model.fc, ZOO["mobilenet_v3_small"], seed)
    return model.eval()


def _bert_init(model: nn.Module) -> None:
    """BERT's own initialisation: N(0, 0.02) weights, zero biases, unit LayerNorms."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


def bert_base(seed: int = DEFAULT_SEED) -> nn.Module:
    def build() -> nn.Module:
        m = bert.BertBase()
        _bert_init(m)
        return m

    model = _seeded(build, seed)
    assert isinstance(model, bert.BertBase)
    model.eval()
    # Centre and spread the 2 logits over seeded inputs so the class depends on the input.
    g = torch.Generator().manual_seed(seed + 7919)
    ids = torch.randint(0, bert.VOCAB, (4, bert.SEQ_LEN), generator=g)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = model(ids, mask)
        mean = logits.mean(dim=0)
        scale = 1.0 / max(float((logits - mean).std()), 1e-6)
        model.classifier.bias.sub_(mean).mul_(scale)
        model.classifier.weight.mul_(scale)
    return model


def _image(name: str = "input") -> tuple[ZooTensor, ...]:
    return (ZooTensor(name, (None, 3, 224, 224), "float32", -2.0, 2.0),)


ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "resnet50",
            "ResNet-50-sized CNN, 3x224x224 -> 1000 logits",
            resnet50,
            _image(),
            ("logits",),
            25_557_032,
            4.1,
        ),
        ZooModel(
            "mobilenet_v3_small",
            "MobileNetV3-Small-sized CNN, 3x224x224 -> 1000 logits",
            mobilenet_v3_small,
            _image(),
            ("logits",),
            2_542_856,
            0.06,
        ),
        ZooModel(
            "bert_base",
            "BERT-base-sized encoder, 128 token ids + attention mask -> 2 logits",
            bert_base,
            (
                ZooTensor("input_ids", (None, bert.SEQ_LEN), "int64", 0, bert.VOCAB),
                ZooTensor("attention_mask", (None, bert.SEQ_LEN), "int64", 0, 2),
            ),
            ("logits",),
            109_483_778,
            11.2,
        ),
    )
}


def example_inputs(model: ZooModel, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Seeded inputs within each tensor's [low, high) range, batch first."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in model.inputs:
        shape = (batch, *(d for d in t.shape[1:] if d is not None))
        if t.dtype.startswith("int"):
            out.append(
                torch.randint(
                    int(t.low), int(t.high), shape, generator=g, dtype=getattr(torch, t.dtype)
                )
            )
        else:
            x = torch.rand(shape, generator=g, dtype=getattr(torch, t.dtype))
            out.append(x * (t.high - t.low) + t.low)
    return tuple(out)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one forward pass on ``inputs`` (2 per multiply-add), counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return int(counter.get_total_flops())
