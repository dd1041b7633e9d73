"""The models servecmp can serve: built-in cards here, users' cards in ``models/<name>.yaml``.

Importing this module is cheap (no torch / tensorflow): the experiment schema resolves models
while validating files. A built-in is a ``ModelCard`` like a user's (a factory source), so it
goes through the same export, parity and payload code; it only adds a hand-written TF twin.
"""

from __future__ import annotations

from pathlib import Path

from servecmp.models.card import (
    ModelCard,
    Source,
    TensorInput,
    TensorOutput,
    is_card_ref,
    load_card,
)

# Weight seed used when none is given; equals the experiment file's default seed.
DEFAULT_SEED = 1234

# Kept for callers typed against the former name.
ModelSpec = ModelCard


class UnknownModelError(KeyError):
    """A model name that is not in the registry; the message lists the allowed names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def _builtin(name: str, description: str, shape: tuple[int, ...], classes: int) -> ModelCard:
    module = f"servecmp.models.{name}"
    return ModelCard(
        name=name,
        description=description,
        source=Source(factory=f"{module}:build_torch", tf_mirror=f"{module}:build_tf"),
        inputs=[TensorInput(name="input", shape=[None, *shape], dtype="float32")],
        outputs=[TensorOutput(name="logits", classification=True, shape=[None, classes])],
    )


_BUILTINS: dict[str, ModelCard] = {
    c.name: c
    for c in (
        _builtin(
            "resnet",
            "ResNet-style image classifier, 4 basic blocks, ~1.2 M params, 3x64x64 -> 10",
            (3, 64, 64),
            10,
        ),
        _builtin(
            "tiny",
            "one linear layer on 3x8x8 -> 10: microseconds of compute, shows serving overhead",
            (3, 8, 8),
            10,
        ),
    )
}
# Cards loaded from files in this process, by model name (an experiment names the file once;
# everything after it uses the name).
_LOADED: dict[str, ModelCard] = {}


def model_names() -> list[str]:
    """The built-in models."""
    return list(_BUILTINS)


def register_card(path: str | Path) -> ModelCard:
    """Load the card at ``path`` and make its name resolvable in this process."""
    card = load_card(path)
    if card.name in _BUILTINS:
        raise UnknownModelError(
            f"{path}: name: {card.name!r} is a built-in model; give the card another name"
        )
    known = _LOADED.get(card.name)
    if known is not None and known.card_path != card.card_path:
        raise UnknownModelError(
            f"{path}: name: {card.name!r} is already the model of {known.card_path}"
        )
    _LOADED[card.name] = card
    return card


def get_model(ref: str) -> ModelCard:
    """A built-in by name, a card loaded earlier by its name, or a card file path."""
    if ref in _BUILTINS:
        return _BUILTINS[ref]
    if ref in _LOADED:
        return _LOADED[ref]
    if is_card_ref(ref):
        return register_card(ref)
    raise UnknownModelError(
        f"model {ref!r} is unknown; allowed: a built-in ({', '.join(sorted(_BUILTINS))}) or a "
        "model card file (models/<name>.yaml)"
    )
