"""PyTorch vs TensorFlow parity: both sides must compute the same function.

Checked on ``n`` seeded random inputs plus the committed golden samples
(``servecmp/models/golden/<name>.npz``). The golden logits also pin the PyTorch side: a change in
``build_torch`` (or in torch's numerics) that moves them fails the check too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from servecmp.models.reference import check_batch, seeded_inputs
from servecmp.models.registry import DEFAULT_SEED, get_model
from servecmp.models.tolerance import BASE_ATOL, tolerance

ATOL = BASE_ATOL["float32"]  # at |logits| <= 1; the rule scales it (servecmp/models/tolerance.py)
GOLDEN_DIR = Path(__file__).parent / "golden"
GOLDEN_N = 4
# Golden inputs come from a different stream than parity's random inputs.
_GOLDEN_INPUT_SEED_OFFSET = 100_003

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ParityReport:
    model: str
    seed: int
    n: int  # inputs compared (random + golden)
    max_abs_diff: float  # max |logit_torch - logit_tf|
    argmax_equal: bool
    atol: float
    golden_n: int  # golden samples included (0: no golden file for this model)
    golden_max_abs_diff: float | None  # current PyTorch vs stored golden logits (same seed only)

    @property
    def passed(self) -> bool:
        golden_ok = self.golden_max_abs_diff is None or self.golden_max_abs_diff <= self.atol
        return self.max_abs_diff <= self.atol and self.argmax_equal and golden_ok

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        golden = (
            f", golden drift {self.golden_max_abs_diff:.2e}"
            if self.golden_max_abs_diff is not None
            else ""
        )
        return (
            f"{verdict} {self.model} (seed {self.seed}): n={self.n} "
            f"max|dlogit|={self.max_abs_diff:.2e} (<= {self.atol:g}), "
            f"argmax equal={self.argmax_equal}{golden}"
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def golden_path(name: str, golden_dir: Path = GOLDEN_DIR) -> Path:
    return golden_dir / f"{name}.npz"


def torch_predict(torch_model: Any) -> Predict:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch_model(torch.from_numpy(x)).numpy()

    return predict


def tf_predict(tf_model: Any) -> Predict:
    """Calls a mirror's ``serve`` function or a loaded SavedModel's ``serving_default``."""
    import tensorflow as tf

    fn = tf_model.signatures["serving_default"] if hasattr(tf_model, "signatures") else None

    def predict(x: np.ndarray) -> np.ndarray:
        t = tf.constant(x)
        out = fn(input=t) if fn is not None else tf_model.serve(t)
        return out["logits"].numpy()

    return predict


def write_golden(name: str, seed: int = DEFAULT_SEED, golden_dir: Path = GOLDEN_DIR) -> Path:
    """(Re)generate ``<golden_dir>/<name>.npz``: inputs, PyTorch logits and the seed."""
    from servecmp.models.reference import expected_logits

    x = seeded_inputs(name, GOLDEN_N, seed + _GOLDEN_INPUT_SEED_OFFSET)
    logits = expected_logits(name, x, seed)
    golden_dir.mkdir(parents=True, exist_ok=True)
    path = golden_path(name, golden_dir)
    np.savez_compressed(path, inputs=x, logits=logits, seed=np.int64(seed))
    return path


def load_golden(
    name: str, golden_dir: Path = GOLDEN_DIR
) -> tuple[np.ndarray, np.ndarray, int] | None:
    path = golden_path(name, golden_dir)
    if not path.is_file():
        return None
    with np.load(path) as z:
        missing = {"inputs", "logits", "seed"} - set(z.files)
        if missing:
            raise ValueError(
                f"{path}: missing array(s) {sorted(missing)}; regenerate with `servecmp golden`"
            )
        x = check_batch(name, z["inputs"])
        logits = np.asarray(z["logits"], dtype=np.float32)
        want = (x.shape[0], get_model(name).num_classes)
        if logits.shape != want:
            raise ValueError(
                f"{path}: logits: expected shape {list(want)}, got {list(logits.shape)}"
            )
        return x, logits, int(z["seed"])


def check_parity(
    name: str,
    seed: int = DEFAULT_SEED,
    n: int = 32,
    atol: float | None = None,
    torch_model: Any = None,
    tf_model: Any = None,
    golden_dir: Path = GOLDEN_DIR,
) -> ParityReport:
    """Compare PyTorch and TF logits; models are built from ``seed`` unless given.

    ``tf_model`` may be the in-memory mirror or a loaded SavedModel. ``atol``: a fixed
    tolerance; by default the shared rule (``tolerance.tolerance``) on the PyTorch logits.
    """
    spec = get_model(name)
    if torch_model is None:
        torch_model = spec.build_torch(seed)
    if tf_model is None:
        tf_model = spec.build_tf(torch_model)
    run_torch, run_tf = torch_predict(torch_model), tf_predict(tf_model)

    batches = [seeded_inputs(name, n, seed)]
    golden = load_golden(name, golden_dir)
    golden_drift: float | None = None
    if golden is not None:
        g_inputs, g_logits, g_seed = golden
        batches.append(g_inputs)
        if g_seed == seed:
            drift = float(np.max(np.abs(run_torch(g_inputs) - g_logits)))
            golden_drift = drift if np.isfinite(drift) else float("inf")

    max_diff, argmax_equal, total, allowed = 0.0, True, 0, 0.0
    for x in batches:
        a, b = run_torch(x), run_tf(x)
        allowed = max(allowed, tolerance(a.dtype, a) if atol is None else atol)
        diff = float(np.max(np.abs(a - b)))
        max_diff = max(max_diff, diff if np.isfinite(diff) else float("inf"))  # NaN must fail
        argmax_equal &= bool(np.array_equal(a.argmax(axis=1), b.argmax(axis=1)))
        total += x.shape[0]
    return ParityReport(
        model=name,
        seed=seed,
        n=total,
        max_abs_diff=max_diff,
        argmax_equal=argmax_equal,
        atol=allowed,
        golden_n=0 if golden is None else golden[0].shape[0],
        golden_max_abs_diff=golden_drift,
    )
