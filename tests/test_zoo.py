"""The zoo: reference-size architectures (parameter counts of the published models, FLOPs counted
by PyTorch), seeded and deterministic in eval mode, inputs within their spec. Shapes and counts
use the meta device (no memory, no compute); only MobileNet and a 1-layer BERT run for real."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from servecmp.models import zoo
from servecmp.models.zoo import bert, mobilenet_v3, resnet_bottleneck

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "resnet50": resnet_bottleneck.ResNet50,
    "mobilenet_v3_small": mobilenet_v3.MobileNetV3Small,
    "bert_base": bert.BertBase,
}


def _meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return ARCHITECTURES[name]().eval()


def _meta_inputs(spec: zoo.ZooModel, batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.empty((batch, *t.shape[1:]), dtype=getattr(torch, t.dtype), device="meta")  # type: ignore[misc]
        for t in spec.inputs
    )


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_parameter_count_is_the_reference_architectures(name: str) -> None:
    assert zoo.parameter_count(_meta(name)) == zoo.ZOO[name].nominal_parameters


@pytest.mark.parametrize("name", sorted(zoo.ZOO))
def test_flops_match_the_quoted_multiply_adds(name: str) -> None:
    spec = zoo.ZOO[name]
    gmacs = zoo.flops(_meta(name), _meta_inputs(spec, 1)) / 2 / 1e9
    assert gmacs == pytest.approx(spec.nominal_gmacs, rel=0.06)


@pytest.mark.parametrize(
    ("name", "width"), [("resnet50", 1000), ("mobilenet_v3_small", 1000), ("bert_base", 2)]
)
def test_output_shape_follows_the_batch(name: str, width: int) -> None:
    spec = zoo.ZOO[name]
    with torch.no_grad():
        y = _meta(name)(*_meta_inputs(spec, 3))
    assert tuple(y.shape) == (3, width)
    assert spec.outputs == ("logits",)
    assert all(t.shape[0] is None for t in spec.inputs)


def test_example_inputs_stay_in_their_ranges() -> None:
    ids, mask = zoo.example_inputs(zoo.ZOO["bert_base"], 4, seed=3)
    assert ids.dtype == mask.dtype == torch.int64
    assert tuple(ids.shape) == tuple(mask.shape) == (4, bert.SEQ_LEN)
    assert int(ids.min()) >= 0 and int(ids.max()) < bert.VOCAB
    assert set(mask.unique().tolist()) <= {0, 1}
    (img,) = zoo.example_inputs(zoo.ZOO["resnet50"], 2, seed=3)
    assert (
        tuple(img.shape) == (2, 3, 224, 224) and -2.0 <= float(img.min()) <= float(img.max()) < 2.0
    )
    assert torch.equal(img, zoo.example_inputs(zoo.ZOO["resnet50"], 2, seed=3)[0])


def test_mobilenet_is_seeded_deterministic_and_input_dependent() -> None:
    spec = zoo.ZOO["mobilenet_v3_small"]
    a, b, c = zoo.mobilenet_v3_small(7), zoo.mobilenet_v3_small(7), zoo.mobilenet_v3_small(8)
    assert not a.training
    (x,) = zoo.example_inputs(spec, 8, seed=5)
    with torch.no_grad():
        ya, yb, yc = a(x), b(x), c(x)
    assert torch.equal(ya, yb)  # same seed: same weights, and eval mode has no randomness
    assert torch.equal(ya, a(x))
    assert not torch.allclose(ya, yc)
    assert len(set(ya.argmax(1).tolist())) > 1  # calibrated: the class depends on the input


def test_bert_ignores_masked_tokens() -> None:
    """One layer of the BERT architecture: the mask really removes padded positions."""
    torch.manual_seed(0)
    model = bert.BertBase()
    model.layers = nn.ModuleList(model.layers[:1])
    model.eval()
    ids, _ = zoo.example_inputs(zoo.ZOO["bert_base"], 2, seed=1)
    mask = torch.ones_like(ids)
    mask[:, 64:] = 0
    other = ids.clone()
    other[:, 64:] = (other[:, 64:] + 1) % bert.VOCAB
    with torch.no_grad():
        y1, y2 = model(ids, mask), model(other, mask)
        y3 = model(other, torch.ones_like(mask))
    torch.testing.assert_close(y1, y2)
    assert not torch.allclose(y1, y3)
