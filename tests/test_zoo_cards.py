"""The zoo's model cards (models/zoo-*.yaml) and experiment files: each card's factory is the
zoo's, its input spec is ZOO's (an integer range is inclusive in a card, half-open in ZOO), and
each experiment file names its card, at concurrency 1 and 4. No model is built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from servecmp.experiment import load_experiment
from servecmp.models.card import load_card
from servecmp.models.zoo import ZOO

ROOT = Path(__file__).resolve().parents[1]
CARDS = {"zoo-mobilenet": "mobilenet_v3_small", "zoo-resnet50": "resnet50", "zoo-bert": "bert_base"}


@pytest.mark.parametrize(("card_name", "zoo_name"), sorted(CARDS.items()))
def test_zoo_card_matches_the_zoo_spec(card_name: str, zoo_name: str) -> None:
    card = load_card(ROOT / "models" / f"{card_name}.yaml")
    spec = ZOO[zoo_name]
    assert card.name == card_name
    assert card.source.factory == f"servecmp.models.zoo:{spec.factory.__name__}"
    assert [i.name for i in card.inputs] == [t.name for t in spec.inputs]
    for got, want in zip(card.inputs, spec.inputs, strict=True):
        assert tuple(got.shape) == want.shape and got.dtype == want.dtype, got.name
        integer = want.dtype.startswith("int")
        assert got.value_range == (want.low, want.high - 1 if integer else want.high), got.name
    assert [o.name for o in card.outputs] == list(spec.outputs)


@pytest.mark.parametrize("card_name", sorted(CARDS))
def test_zoo_experiment_uses_its_card(card_name: str) -> None:
    exp = load_experiment(ROOT / "loadtests" / "experiments" / f"{card_name}.yaml")
    assert exp.model == card_name
    assert exp.load.concurrency == [1, 4]
    servers = {t.server for t in exp.targets}
    assert {"torchserve", "pytorch"} <= servers
