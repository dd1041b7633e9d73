"""Model cards (servecmp/models/card.py) and their sources (sources.py): valid cards build a
checked PyTorch reference; every bad card or source is refused naming the field and the file."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from servecmp.experiment import ExperimentError, parse_experiment
from servecmp.models.card import ModelCardError, load_card
from servecmp.models.registry import get_model

FACTORIES = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.fc = nn.Linear(12, 4)
        self.p = dropout
    def forward(self, x):
        y = self.fc(x.flatten(1))
        # dropout applied regardless of eval mode: outputs change from run to run
        return torch.nn.functional.dropout(y, self.p, training=True) if self.p else y

def make(seed=0, width=4):
    return Net()

def noisy():
    return Net(dropout=0.5)

def not_a_module():
    return "hello"

def text(vocab=100):
    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(vocab, 8)
            self.fc = nn.Linear(8, 3)
        def forward(self, ids, mask):
            h = (self.emb(ids) * mask.unsqueeze(-1)).sum(1)
            return self.fc(h)
    return Enc()
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pkg = tmp_path / "pkgs"
    pkg.mkdir()
    name = f"cardfactories_{abs(hash(str(tmp_path))) % 10**8}"
    (pkg / f"{name}.py").write_text(FACTORIES)
    (pkg / "broken_factory.py").write_text("import not_a_real_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(pkg))
    return name


def write_card(tmp_path: Path, body: dict, name: str = "card.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(body))
    return p


def image_card(source: dict, **extra: object) -> dict:
    return {
        "name": "mine",
        "source": source,
        "inputs": [{"name": "input", "shape": [None, 3, 2, 2], "dtype": "float32"}],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 4]}],
        **extra,
    }


def test_factory_card_builds_a_seeded_checked_model(tmp_path: Path, factories: str) -> None:
    card = load_card(write_card(tmp_path, image_card({"factory": f"{factories}:make"})))
    assert (card.input_shape, card.num_classes, card.input_name) == ((3, 2, 2), 4, "input")
    a, b = card.build_torch(5), card.build_torch(5)
    assert not a.training
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False)
    )
    c = card.build_torch(6)
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_torchscript_card_path_is_relative_to_the_card(tmp_path: Path) -> None:
    sub = tmp_path / "models"
    sub.mkdir()
    torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(12, 4))).save(str(sub / "m.pt"))
    card = load_card(write_card(sub, image_card({"torchscript": "m.pt"})))
    model = card.build_torch(0)
    assert model(torch.zeros(2, 3, 2, 2)).shape == (2, 4)


def test_two_input_token_card(tmp_path: Path, factories: str) -> None:
    body = {
        "name": "enc",
        "source": {"factory": f"{factories}:text", "kwargs": {"vocab": 50}},
        "inputs": [
            {"name": "input_ids", "shape": [None, 16], "dtype": "int64", "range": [0, 49]},
            {"name": "attention_mask", "shape": [None, 16], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
    }
    card = load_card(write_card(tmp_path, body))
    card.build_torch(1)
    with pytest.raises(ModelCardError, match="has 2 inputs"):
        _ = card.input_shape


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"source": {}}, "source", "exactly one of torchscript, onnx, factory"),
        ({"source": {"factory": "a:b", "onnx": "x.onnx"}}, "source", "exactly one"),
        ({"source": {"factory": "no colon"}}, "source", "package.module:function"),
        ({"inputs": []}, "inputs", "at least 1"),
        ({"inputs": [{"name": "x", "shape": [3, 2, 2]}]}, "inputs.0", "dynamic batch axis"),
        ({"inputs": [{"name": "x", "shape": [None, 0]}]}, "inputs.0", "positive sizes"),
        ({"inputs": [{"name": "x", "shape": [None, 4], "dtype": "int64"}]}, "inputs.0", "range"),
        (
            {"inputs": [{"name": "x", "shape": [None, 4], "dtype": "bf16"}]},
            "inputs.0.dtype",
            "float32",
        ),
        ({"outputs": [{"name": "a"}, {"name": "a"}]}, "outputs", "duplicate"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_cards_name_the_field(tmp_path: Path, change: dict, field: str, expected: str) -> None:
    body = {**image_card({"factory": "m:f"}), **change}
    with pytest.raises(ModelCardError) as err:
        load_card(write_card(tmp_path, body))
    msg = str(err.value)
    assert "card.yaml" in msg and f"- {field}" in msg and expected in msg, msg


def test_missing_source_file_and_missing_card(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match=r"source.torchscript: file not found: .*nope.pt"):
        load_card(write_card(tmp_path, image_card({"torchscript": "nope.pt"})))
    with pytest.raises(ModelCardError, match="model card not found"):
        load_card(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ModelCardError, match="expected a YAML mapping"):
        load_card(tmp_path / "list.yaml")


def test_file_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "m.pt").write_bytes(b"this is not a zip archive of a TorchScript model")
    card = load_card(write_card(tmp_path, image_card({"torchscript": "m.pt"})))
    with pytest.raises(
        ModelCardError, match=r"source.torchscript: .*m.pt is not a TorchScript model"
    ):
        card.build_torch(0)


def test_factory_that_fails_to_import(tmp_path: Path, factories: str) -> None:
    card = load_card(write_card(tmp_path, image_card({"factory": "broken_factory:make"})))
    with pytest.raises(
        ModelCardError,
        match=r"source.factory: cannot import module 'broken_factory': "
        r"ModuleNotFoundError: .*not_a_real_dependency_xyz",
    ):
        card.build_torch(0)
    card = load_card(write_card(tmp_path, image_card({"factory": f"{factories}:absent"})))
    with pytest.raises(ModelCardError, match="has no callable 'absent'"):
        card.build_torch(0)
    card = load_card(write_card(tmp_path, image_card({"factory": f"{factories}:not_a_module"})))
    with pytest.raises(ModelCardError, match=r"returned str, expected a torch\.nn\.Module"):
        card.build_torch(0)


def test_nondeterministic_model_is_refused(tmp_path: Path, factories: str) -> None:
    card = load_card(write_card(tmp_path, image_card({"factory": f"{factories}:noisy"})))
    with pytest.raises(ModelCardError, match="'logits' is not deterministic in eval mode"):
        card.build_torch(0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"inputs": [{"name": "input", "shape": [None, 3, 5, 5]}]},
            "does not accept the declared inputs",
        ),
        (
            {"outputs": [{"name": "logits", "shape": [None, 7]}]},
            r"outputs.0.shape: declared \[None, 7\]",
        ),
        ({"outputs": [{"name": "a"}, {"name": "b"}]}, "declares 2 output"),
    ],
)
def test_spec_inconsistent_with_the_model(
    tmp_path: Path, factories: str, change: dict, expected: str
) -> None:
    body = {**image_card({"factory": f"{factories}:make"}), **change}
    card = load_card(write_card(tmp_path, body))
    with pytest.raises(ModelCardError, match=expected):
        card.build_torch(0)


def test_experiment_names_a_card_relative_to_its_file(tmp_path: Path, factories: str) -> None:
    (tmp_path / "models").mkdir()
    write_card(tmp_path / "models", image_card({"factory": f"{factories}:make"}), "mine.yaml")
    data = {
        "name": "x",
        "model": "models/mine.yaml",
        "targets": [{"server": "pytorch", "protocol": "inprocess"}],
    }
    exp = parse_experiment(data, "exp.yaml", base_dir=tmp_path)
    assert exp.model == "mine" and exp.model_card == str((tmp_path / "models/mine.yaml").resolve())
    again = parse_experiment(exp.model_dump(mode="json"))  # what child processes re-validate
    assert again.model == "mine" and get_model("mine").card_path == Path(exp.model_card)
    with pytest.raises(ExperimentError, match="model card not found"):
        parse_experiment({**data, "model": "models/absent.yaml"}, "exp.yaml", base_dir=tmp_path)


def test_registry_import_stays_cheap_with_cards() -> None:
    import subprocess

    code = textwrap.dedent(
        """
        import sys
        from servecmp.models.registry import get_model
        get_model('resnet').input_shape
        heavy = [m for m in ('torch', 'tensorflow') if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_experiment_refuses_targets_that_cannot_send_several_inputs(
    tmp_path: Path, factories: str
) -> None:
    body = {
        "name": "enc2",
        "source": {"factory": f"{factories}:text"},
        "inputs": [
            {"name": "input_ids", "shape": [None, 16], "dtype": "int64", "range": [0, 99]},
            {"name": "attention_mask", "shape": [None, 16], "dtype": "int64", "range": [0, 1]},
        ],
        "outputs": [{"name": "logits", "classification": True, "shape": [None, 3]}],
    }
    write_card(tmp_path, body, "enc2.yaml")
    ok = [
        {"server": "torchserve", "protocol": "rest"},
        {"server": "torchserve", "protocol": "rest", "encoding": "raw"},
        {"server": "torchserve", "protocol": "grpc"},
        {"server": "pytorch", "protocol": "inprocess"},
        *(
            {"server": s, "protocol": p, "encoding": e}
            for s, p, e in (
                ("kserve", "rest", "json"),
                ("kserve", "rest", "oip"),
                ("kserve", "rest", "oip-binary"),
                ("kserve", "grpc", "oip"),
                ("triton", "rest", "oip"),
                ("triton", "rest", "oip-binary"),
                ("triton", "grpc", "oip"),
                ("rayserve", "rest", "oip"),
                ("rayserve", "rest", "oip-binary"),
                ("rayserve", "grpc", "oip"),
            )
        ),
    ]
    data = {"name": "x", "model": "enc2.yaml", "targets": ok}
    assert parse_experiment(data, "exp.yaml", base_dir=tmp_path).model == "enc2"
    data["targets"] = [*ok, {"server": "tfserving", "protocol": "rest", "encoding": "b64"}]
    with pytest.raises(ExperimentError) as err:
        parse_experiment(data, "exp.yaml", base_dir=tmp_path)
    msg = str(err.value)
    assert (
        "input_ids int64, attention_mask int64" in msg and "tfserving-rest-b64 cannot send" in msg
    )
    assert all(s in msg for s in ("torchserve", "kserve", "triton", "rayserve", "pytorch"))


def test_payloads_take_the_cards_value_range(tmp_path: Path) -> None:
    import numpy as np

    from servecmp.load.payloads import QUANTUM, PayloadSet

    body = image_card({"factory": "m:f"})
    body["inputs"][0]["range"] = [0.0, 1.0]
    card = load_card(write_card(tmp_path, body))
    ps = PayloadSet.build(card, 3, 2, 8, expected=lambda x: np.zeros((len(x), 4), np.float32))
    assert ps.inputs.min() >= 0.0 and ps.inputs.max() <= 1.0
    assert ps.inputs.min() == 0.0 and ps.inputs.max() == 1.0  # normal values clipped to the range
    assert np.all(np.round(ps.inputs / QUANTUM) * QUANTUM == ps.inputs)  # exact in JSON text


def test_digest_follows_the_cards_content_not_where_the_checkout_is(
    tmp_path: Path, factories: str
) -> None:
    """The same card in another checkout (a path with a space) digests alike; a changed card
    changes the digest."""
    (tmp_path / "models").mkdir()
    card = {**image_card({"factory": f"{factories}:make"}), "name": "digested"}
    write_card(tmp_path / "models", card, "digested.yaml")
    data = {
        "name": "x",
        "model": "models/digested.yaml",
        "targets": [{"server": "pytorch", "protocol": "inprocess"}],
    }
    exp = parse_experiment(data, "e.yaml", base_dir=tmp_path)
    other = tmp_path / "b with space" / "models"
    other.mkdir(parents=True)
    copy = write_card(other, card, "digested.yaml")
    assert exp.model_copy(update={"model_card": str(copy)}).digest() == exp.digest()
    write_card(other, {**card, "description": "changed"}, "digested.yaml")
    assert exp.model_copy(update={"model_card": str(copy)}).digest() != exp.digest()
