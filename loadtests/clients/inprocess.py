"""In-process baselines: the model called directly, no server, no network, no encoding.

``address`` is the artifact: a TorchScript file (``pytorch``) or a SavedModel directory
(``tensorflow``; a TF Serving base dir with numeric version subdirs picks the highest).
``intra_op_threads`` sets the framework's math threads (the same budget the servers get).
Thread settings are process-wide in both frameworks; ``threads_effective`` records what the
framework actually uses. TensorFlow refuses changes once its runtime is initialised: the TF
client then raises (``strict_threads=True``, the default) rather than run a baseline with a
thread budget other than the one asked for — run each baseline in its own process.
Timeouts cannot interrupt a framework call; ``timeout_s`` is accepted and not enforced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from servecmp.loadtests.clients.base import TargetClient, TransportError
from servecmp.loadtests.payloads import PayloadSet

from servecmp.experiment import Protocol, Server, Target


class PyTorchInProcessClient(TargetClient):
    serves = ((Server.pytorch, Protocol.inprocess),)

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        intra_op_threads: int | None = None,
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        import torch

        self._torch = torch
        if intra_op_threads is not None:
            torch.set_num_threads(int(intra_op_threads))
        self.threads_effective = torch.get_num_threads()
        self._model = torch.jit.load(str(address), map_location="cpu").eval()
        self._inputs = [torch.from_numpy(payloads.inputs[i]) for i in range(len(payloads))]

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        try:
            with self._torch.inference_mode():
                out = self._model(self._inputs[index])
        except Exception as err:
            raise TransportError("inprocess", f"{type(err).__name__}: {err}") from None
        if isinstance(out, dict):
            out = out[self.payloads.output_name]
        logits = out.detach().numpy()
        return self._logits_from_flat(logits), logits.nbytes


def saved_model_dir(path: str | Path) -> Path:
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    versions = [d for d in p.iterdir() if d.is_dir() and d.name.isdigit()] if p.is_dir() else []
    if versions:
        return max(versions, key=lambda d: int(d.name))
    raise FileNotFoundError(f"{p}: no saved_model.pb (nor numeric version dirs holding one)")


class TensorFlowInProcessClient(TargetClient):
    serves = ((Server.tensorflow, Protocol.inprocess),)

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        intra_op_threads: int | None = None,
        signature_name: str = "serving_default",
        strict_threads: bool = True,
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        import tensorflow as tf

        if intra_op_threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
            except RuntimeError as err:  # the runtime is already initialised in this process
                current = tf.config.threading.get_intra_op_parallelism_threads()
                if strict_threads and current != int(intra_op_threads):
                    raise RuntimeError(
                        f"cannot set TensorFlow intra-op threads to {intra_op_threads}: the "
                        f"runtime is already initialised with {current or 'default'} ({err}); "
                        "run the TensorFlow baseline in a fresh process"
                    ) from None
        # None = TensorFlow's own default (not controlled)
        self.threads_effective: int | None = (
            tf.config.threading.get_intra_op_parallelism_threads() or None
        )
        self._loaded: Any = tf.saved_model.load(str(saved_model_dir(address)))
        self._fn = self._loaded.signatures[signature_name]
        self._inputs = [tf.constant(payloads.inputs[i]) for i in range(len(payloads))]

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        try:
            out = self._fn(**{self.payloads.input_name: self._inputs[index]})
        except Exception as err:
            raise TransportError("inprocess", f"{type(err).__name__}: {err}") from None
        name = self.payloads.output_name
        if name not in out:
            raise TransportError("decode", f"signature outputs {list(out)} lack {name!r}")
        logits = out[name].numpy()
        return self._logits_from_flat(logits), logits.nbytes
