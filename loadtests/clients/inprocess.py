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

from servecmp.experiment import Protocol, Server, Target
from servecmp.loadtests.clients.base import TargetClient, TransportError
from servecmp.loadtests.payloads import PayloadSet


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


# One loaded SavedModel (and its input tensors) per process. Under gevent (a Locust process),
# TensorFlow's per-thread eager context becomes per-greenlet and calls from another greenlet come
# back in graph mode (SymbolicTensor outputs). So in a patched process every TensorFlow call runs
# on one native thread of gevent's threadpool (the greenlet waits cooperatively); this adds a
# thread hand-off of tens of microseconds per call, negligible against the model's compute.
_TF_CACHE: dict[tuple[str, str, int], tuple[Any, Any, list[Any]]] = {}


def _on_tf_thread(fn: Any, *args: Any) -> Any:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent comes with locust
        return fn(*args)
    if not monkey.is_module_patched("threading"):
        return fn(*args)
    import gevent

    hub = gevent.get_hub()
    if hub.threadpool.maxsize != 1:
        hub.threadpool.maxsize = 1  # one native thread: TF state stays on it
    return hub.threadpool.apply(fn, args)


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
        key = (str(saved_model_dir(address)), signature_name, id(payloads))
        if key not in _TF_CACHE:

            def load() -> tuple[Any, Any, list[Any]]:
                loaded = tf.saved_model.load(key[0])
                inputs = [tf.constant(payloads.inputs[i]) for i in range(len(payloads))]
                return loaded, loaded.signatures[signature_name], inputs

            _TF_CACHE[key] = _on_tf_thread(load)
        self._loaded, self._fn, self._inputs = _TF_CACHE[key]

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        name = self.payloads.output_name

        def infer() -> Any:
            out = self._fn(**{self.payloads.input_name: self._inputs[index]})
            return {k: v.numpy() for k, v in out.items()}

        try:
            out = _on_tf_thread(infer)
        except Exception as err:
            raise TransportError("inprocess", f"{type(err).__name__}: {err}") from None
        if name not in out:
            raise TransportError("decode", f"signature outputs {list(out)} lack {name!r}")
        logits = out[name]
        return self._logits_from_flat(logits), logits.nbytes
