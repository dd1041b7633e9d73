"""The models servecmp can serve: one ``ModelSpec`` per model, one line each in ``_SPECS``.

Importing this module is cheap (no torch / tensorflow): the experiment schema calls
``model_names()`` while validating files. Adding a model = one module exposing
``build_torch(seed)`` and ``build_tf(torch_model)`` + one line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# Weight seed used when none is given; equals the experiment file's default seed.
DEFAULT_SEED = 1234


class UnknownModelError(KeyError):
    """A model name that is not in the registry; the message lists the allowed names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    input_shape: tuple[int, ...]  # one example, NCHW without the batch axis, e.g. (3, 64, 64)
    num_classes: int
    module: str  # import path of the module with build_torch / build_tf
    input_name: str = "input"
    output_name: str = "logits"

    @property
    def example_numel(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    def load_module(self) -> ModuleType:
        """The model's module (imports torch and tensorflow on first use)."""
        return importlib.import_module(self.module)

    def build_torch(self, seed: int = DEFAULT_SEED) -> Any:
        return self.load_module().build_torch(seed)

    def build_tf(self, torch_model: Any) -> Any:
        return self.load_module().build_tf(torch_model)

    def to_json(self) -> dict[str, Any]:
        """The subset the TorchServe handler needs (packaged into the .mar as model_spec.json)."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "input_name": self.input_name,
            "output_name": self.output_name,
        }


_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec(
            name="resnet",
            description="ResNet-style image classifier, 4 basic blocks, ~1.2 M params, 3x64x64 -> 10",
            input_shape=(3, 64, 64),
            num_classes=10,
            module="servecmp.models.resnet",
        ),
        ModelSpec(
            name="tiny",
            description="one linear layer on 3x8x8 -> 10: microseconds of compute, shows serving overhead",
            input_shape=(3, 8, 8),
            num_classes=10,
            module="servecmp.models.tiny",
        ),
    )
}


def model_names() -> list[str]:
    return list(_SPECS)


def get_model(name: str) -> ModelSpec:
    try:
        return _SPECS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; allowed: {', '.join(sorted(_SPECS))}"
        ) from None
