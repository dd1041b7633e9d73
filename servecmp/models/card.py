"""Model cards: what a model is (its source) and what it takes and returns (its input spec).

A card is a YAML file, ``models/<name>.yaml`` by convention, naming exactly one source (a
TorchScript file, an ONNX file or a ``package.module:function`` factory returning an
``nn.Module``) plus the inputs (name, shape with a dynamic batch axis first, dtype, value range
of generated inputs) and outputs (name, whether it is a classification). File paths in a card
are relative to the card file. Built-in models have cards too (``registry.py``), so every model
goes through the same export, parity and payload code.

Importing this module is cheap (pydantic and yaml only): experiments are validated with it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Dtype = Literal["float32", "int64", "int32"]
FACTORY_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")
# TorchServe model names, KServe model names and TF Serving model dirs: keep to this.
NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,40}$"
# Generated float inputs: standard normal, clipped to the range (payloads.py quantises them).
DEFAULT_FLOAT_RANGE = (-4.0, 4.0)


class ModelCardError(ValueError):
    """A card (or its source) is invalid; the message names the file, the field and what was
    expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorInput(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    # [None, d1, d2, ...]: the first axis is the dynamic batch axis, the others fixed sizes.
    shape: list[int | None] = Field(min_length=2)
    dtype: Dtype = "float32"
    # Generated values: floats standard normal clipped to [lo, hi]; integers uniform in [lo, hi].
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> TensorInput:
        if self.shape[0] is not None:
            raise ValueError(
                f"shape: expected the dynamic batch axis first (null), got {self.shape}"
            )
        rest = self.shape[1:]
        if any(d is None or d < 1 for d in rest):
            raise ValueError(
                f"shape: expected positive sizes after the batch axis (only the first axis may "
                f"be null), got {self.shape}"
            )
        if self.range is not None:
            lo, hi = self.range
            if not lo < hi:
                raise ValueError(
                    f"range: expected [low, high] with low < high, got {list(self.range)}"
                )
            if self.dtype != "float32" and (lo != int(lo) or hi != int(hi)):
                raise ValueError(
                    f"range: expected integers for dtype {self.dtype}, got {list(self.range)}"
                )
        elif self.dtype != "float32":
            raise ValueError(
                f"range: required for dtype {self.dtype} (e.g. [0, 30521] for token ids, [1, 1] "
                "for an all-ones attention mask)"
            )
        return self

    @property
    def example_shape(self) -> tuple[int, ...]:
        """One example's shape, without the batch axis."""
        return tuple(int(d) for d in self.shape[1:] if d is not None)

    @property
    def value_range(self) -> tuple[float, float]:
        return self.range if self.range is not None else DEFAULT_FLOAT_RANGE


class TensorOutput(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    # [None, classes] scores whose argmax / top-k is the answer: parity checks their agreement.
    classification: bool = False
    top_k: Annotated[int, Field(ge=1, le=100)] = 1
    shape: list[int | None] | None = None  # [None, classes]; checked against a model run


class Source(_Strict):
    """Exactly one of ``torchscript``, ``onnx``, ``factory``."""

    torchscript: str | None = None  # file path, relative to the card
    onnx: str | None = None  # file path, relative to the card
    factory: str | None = None  # "package.module:function" returning an nn.Module
    # Keyword arguments for the factory; a factory taking ``seed`` also gets the weights seed.
    kwargs: dict[str, Any] = Field(default_factory=dict)
    # Built-ins only: "module:function(torch_model)" building the hand-written TF twin.
    tf_mirror: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Source:
        given = [k for k in ("torchscript", "onnx", "factory") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "expected exactly one of torchscript, onnx, factory; got "
                + (", ".join(given) if given else "none")
            )
        for key in ("factory", "tf_mirror"):
            ref = getattr(self, key)
            if ref is not None and not FACTORY_RE.match(ref):
                raise ValueError(f"{key}: expected 'package.module:function', got {ref!r}")
        if self.kwargs and not self.factory:
            raise ValueError("kwargs: only a factory source takes keyword arguments")
        return self

    @property
    def kind(self) -> Literal["torchscript", "onnx", "factory"]:
        if self.torchscript:
            return "torchscript"
        return "onnx" if self.onnx else "factory"


class ModelCard(_Strict):
    name: Annotated[str, Field(pattern=NAME_RE)]
    description: str = ""
    source: Source
    inputs: list[TensorInput] = Field(min_length=1)
    outputs: list[TensorOutput] = Field(min_length=1)
    real_inputs: str | None = None  # .npz with one array per input name, relative to the card
    # false: never port ONNX -> TensorFlow (no SavedModel: TF Serving and the TF baseline are
    # refused for this model); a run also skips the port when no TF target is in it
    port: bool = True
    # Where relative paths are resolved (the card's folder); not part of the YAML.
    base_dir: Path = Field(default=Path("."), exclude=True)
    card_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check(self) -> ModelCard:
        for what, names in (
            ("inputs", [i.name for i in self.inputs]),
            ("outputs", [o.name for o in self.outputs]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate name(s) {', '.join(dupes)}")
        for i, out in enumerate(self.outputs):
            if out.classification and out.shape is not None and len(out.shape) != 2:
                raise ValueError(
                    f"outputs.{i}.shape: a classification output is [null, classes], got {out.shape}"
                )
        return self

    # ---- paths ---------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else (self.base_dir / p)

    def check_files(self) -> None:
        """Every file the card names exists (ModelCardError naming the field otherwise)."""
        for field, rel in (
            ("source.torchscript", self.source.torchscript),
            ("source.onnx", self.source.onnx),
            ("real_inputs", self.real_inputs),
        ):
            if rel is not None and not self.path(rel).is_file():
                where = f"{self.card_path}: " if self.card_path else ""
                raise ModelCardError(f"{where}{field}: file not found: {self.path(rel)}")

    # ---- what the single-tensor parts of the stack read ------------------------------------
    @property
    def input(self) -> TensorInput:
        if len(self.inputs) != 1:
            raise ModelCardError(
                f"model {self.name!r} has {len(self.inputs)} inputs "
                f"({', '.join(i.name for i in self.inputs)}); this path takes one input tensor"
            )
        return self.inputs[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.example_shape

    @property
    def input_name(self) -> str:
        return self.input.name

    @property
    def output(self) -> TensorOutput:
        return self.outputs[0]

    @property
    def output_name(self) -> str:
        return self.output.name

    @property
    def num_classes(self) -> int:
        shape = self.output.shape
        if not shape or shape[-1] is None:
            raise ModelCardError(
                f"model {self.name!r}: outputs.0.shape: expected [null, classes] to know the "
                "answer's size"
            )
        return int(shape[-1])

    @property
    def example_numel(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    @property
    def module(self) -> str:
        """Where the model comes from, for packaging records."""
        src = self.source
        return src.factory or str(self.path(src.torchscript or src.onnx or ""))

    @property
    def is_multi(self) -> bool:
        """Several inputs or an integer one: only multi-input encodings can carry it."""
        return len(self.inputs) != 1 or self.inputs[0].dtype != "float32"

    def describe_inputs(self) -> str:
        return ", ".join(f"{i.name} {i.dtype}" for i in self.inputs)

    def load_limits(self) -> str | None:
        """Why the load clients cannot check this model's answers (None: they can): they
        compare one [batch, classes] output."""
        out = self.output.shape
        if out is None or len(out) != 2 or out[1] is None:
            return (
                f"model {self.name!r}: outputs.0.shape: expected [null, classes] for the "
                "answer checks"
            )
        return None

    def digest(self) -> str:
        """Changes when the card or its source file does: exported artifacts are reused only
        for the same digest."""
        import hashlib

        # `port` decides only whether the SavedModel is made; the export record says so
        # (ExportRecord.not_ported), and leaving it out keeps older digests valid
        h = hashlib.sha256(self.model_dump_json(exclude={"port"}).encode())
        for rel in (self.source.torchscript, self.source.onnx, self.real_inputs):
            if rel is not None and self.path(rel).is_file():
                h.update(self.path(rel).read_bytes())
        return h.hexdigest()

    # ---- building (torch / tensorflow imported lazily) -------------------------------------
    def build_torch(self, seed: int) -> Any:
        from servecmp.models.sources import build_torch

        return build_torch(self, seed)

    def build_tf(self, torch_model: Any) -> Any:
        from servecmp.models.sources import build_tf_mirror

        return build_tf_mirror(self, torch_model)

    def to_json(self) -> dict[str, Any]:
        """The subset the TorchServe handler and the KServe model server read (model_spec.json)."""
        single = len(self.inputs) == 1 and self.output.shape is not None
        return {
            "name": self.name,
            **(
                {
                    "input_shape": list(self.input_shape),
                    "num_classes": self.num_classes,
                    "input_name": self.input_name,
                    "output_name": self.output_name,
                }
                if single
                else {}
            ),
            "inputs": [
                {"name": i.name, "shape": list(i.shape), "dtype": i.dtype} for i in self.inputs
            ],
            "outputs": [o.name for o in self.outputs],
        }


def _format(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid model card"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # a validator's "field: message" names the field below the located object
        m = re.match(r"^([a-z_][a-z0-9_.]*): (.*)$", msg, re.S)
        if m and e["type"] == "value_error":
            loc, msg = ".".join(x for x in (loc, m.group(1)) if x), m.group(2)
        loc = loc or "(top level)"
        if e["type"] == "extra_forbidden":
            msg = "unknown field (see models/README.md for the card schema)"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_card(data: object, path: Path) -> ModelCard:
    if not isinstance(data, dict):
        raise ModelCardError(
            f"{path}: expected a YAML mapping (name, source, inputs, outputs), "
            f"got {type(data).__name__}"
        )
    try:
        card = ModelCard.model_validate(
            {**data, "base_dir": path.parent.resolve(), "card_path": path.resolve()}
        )
    except ValidationError as err:
        raise ModelCardError(_format(path, err)) from None
    card.check_files()
    return card


def load_card(path: str | Path) -> ModelCard:
    p = Path(path)
    if not p.is_file():
        raise ModelCardError(f"{p}: model card not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ModelCardError(f"{p}: not valid YAML: {err}") from None
    return parse_card(data, p)


def is_card_ref(ref: str) -> bool:
    """``ref`` names a card file rather than a built-in."""
    return ref.endswith((".yaml", ".yml"))
