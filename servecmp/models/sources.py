"""Build the reference of a model card's source, and refuse what cannot be served.

The reference is the PyTorch model for a factory or a TorchScript file, and ONNX Runtime on the
file for an ONNX source (servecmp/models/onnx_source.py); ``run_torch`` runs either.

Every refusal is a ``ModelCardError`` naming the card's field and what was expected: a factory
that fails to import or returns something else than an ``nn.Module``, a file that is not a
TorchScript (or ONNX) model, an ONNX graph unlike its card, a model whose outputs differ between
two eval-mode runs on the same input, an input spec the model does not accept.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

from servecmp.models.card import ModelCard, ModelCardError, TensorInput
from servecmp.models.onnx_source import OnnxModel, load_onnx

# Two eval-mode runs on the same input must agree this closely (dropout left on, sampling,
# uninitialised memory show up far above it).
DETERMINISM_ATOL = 0.0
CHECK_BATCH = 2


def _where(card: ModelCard) -> str:
    return f"{card.card_path}: " if card.card_path else f"model {card.name!r}: "


def _import(card: ModelCard, ref: str, field: str) -> Any:
    module, _, attr = ref.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # any import-time failure of user code
        raise ModelCardError(
            f"{_where(card)}{field}: cannot import module {module!r}: {type(err).__name__}: {err}"
        ) from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ModelCardError(f"{_where(card)}{field}: {module!r} has no callable {attr!r}")
    return fn


def _from_factory(card: ModelCard, seed: int) -> Any:
    import torch

    ref = card.source.factory
    assert ref is not None
    fn = _import(card, ref, "source.factory")
    kwargs = dict(card.source.kwargs)
    try:
        takes_seed = "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed:
        kwargs["seed"] = seed
    with torch.random.fork_rng():  # seeded weights even for factories that take no seed
        torch.manual_seed(seed)
        try:
            model = fn(**kwargs)
        except Exception as err:
            raise ModelCardError(
                f"{_where(card)}source.factory: {ref}({', '.join(kwargs)}) failed: "
                f"{type(err).__name__}: {err}"
            ) from None
    if not isinstance(model, torch.nn.Module):
        raise ModelCardError(
            f"{_where(card)}source.factory: {ref} returned {type(model).__name__}, "
            "expected a torch.nn.Module"
        )
    return model


def _from_torchscript(card: ModelCard) -> Any:
    import torch

    assert card.source.torchscript is not None
    path = card.path(card.source.torchscript)
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelCardError(
            f"{_where(card)}source.torchscript: {path} is not a TorchScript model "
            f"(torch.jit.load: {first[:200]})"
        ) from None


def example_inputs(card: ModelCard, batch: int, seed: int) -> list[np.ndarray]:
    """Seeded inputs ``[batch, *shape]`` per card input, in its dtype and value range."""
    rng = np.random.default_rng(seed)
    return [generate(spec, batch, rng) for spec in card.inputs]


def generate(spec: TensorInput, batch: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = spec.value_range
    shape = (batch, *spec.example_shape)
    if spec.dtype == "float32":
        quantum = 1.0 / 256.0  # exact in float32 and in short decimals (see load/payloads.py)
        x = np.clip(np.round(rng.standard_normal(shape) / quantum) * quantum, lo, hi)
        return np.ascontiguousarray(x.astype("<f4"))
    return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(spec.dtype)


def run_torch(model: Any, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``model`` on ``arrays`` as a list of numpy arrays (tuple/dict outputs flattened);
    an ONNX source's reference runs in ONNX Runtime."""
    if isinstance(model, OnnxModel):
        return model.run(arrays)
    import torch

    with torch.inference_mode():
        out = model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, torch.Tensor):
        out = [out]
    return [o.detach().numpy() for o in out]


def check_model(card: ModelCard, model: Any, seed: int) -> None:
    """Run ``model`` twice on seeded inputs: the spec must fit and the outputs must agree."""
    arrays = example_inputs(card, CHECK_BATCH, seed)
    try:
        first = run_torch(model, arrays)
    except Exception as err:
        shapes = ", ".join(
            f"{i.name} {[CHECK_BATCH, *i.example_shape]} {i.dtype}" for i in card.inputs
        )
        raise ModelCardError(
            f"{_where(card)}inputs: the model does not accept the declared inputs ({shapes}): "
            f"{type(err).__name__}: {str(err).strip()[:300]}"
        ) from None
    if len(first) != len(card.outputs):
        raise ModelCardError(
            f"{_where(card)}outputs: the card declares {len(card.outputs)} output(s) "
            f"({', '.join(o.name for o in card.outputs)}), the model returns {len(first)}"
        )
    for i, (out, arr) in enumerate(zip(card.outputs, first, strict=True)):
        if arr.ndim < 1 or arr.shape[0] != CHECK_BATCH:
            raise ModelCardError(
                f"{_where(card)}outputs.{i} ({out.name}): expected the batch axis first "
                f"({CHECK_BATCH} rows), got shape {list(arr.shape)}"
            )
        if out.shape is not None and [d for d in out.shape[1:]] != list(arr.shape[1:]):
            raise ModelCardError(
                f"{_where(card)}outputs.{i}.shape: declared {out.shape}, the model returns "
                f"{[None, *arr.shape[1:]]}"
            )
        if out.classification and arr.ndim != 2:
            raise ModelCardError(
                f"{_where(card)}outputs.{i}: a classification output is [batch, classes], "
                f"got {list(arr.shape)}"
            )
    second = run_torch(model, arrays)
    for out, a, b in zip(card.outputs, first, second, strict=True):
        diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
        if not np.isfinite(diff) or diff > DETERMINISM_ATOL:
            raise ModelCardError(
                f"{_where(card)}output {out.name!r} is not deterministic in eval mode: two runs "
                f"on the same input differ by max |d| = {diff:.3g} (dropout or sampling left on"
                f"{', e.g. a Random* or training-mode Dropout node' if card.source.onnx else ''}?)"
            )


def build_torch(card: ModelCard, seed: int) -> Any:
    """The card's reference in eval mode, checked (see ``check_model``): a PyTorch module, or
    for an ONNX source an ONNX Runtime session on the file (its weights are the file's: the
    seed does not change them)."""
    kind = card.source.kind
    if kind == "onnx":
        model: Any = load_onnx(card)
    else:
        model = _from_factory(card, seed) if kind == "factory" else _from_torchscript(card)
    model.eval()
    check_model(card, model, seed)
    return model


def build_tf_mirror(card: ModelCard, torch_model: Any) -> Any:
    """The hand-written TensorFlow twin of a built-in (``source.tf_mirror``)."""
    ref = card.source.tf_mirror
    if ref is None:
        raise ModelCardError(
            f"{_where(card)}source.tf_mirror: no TensorFlow model for {card.name!r}: it is "
            "served by the PyTorch-framework servers only (the ONNX -> SavedModel port is "
            "not available)"
        )
    return _import(card, ref, "source.tf_mirror")(torch_model)
