"""In-process baselines: the model called directly, no server, no network, no encoding.

``address`` is the artifact: a TorchScript file (``pytorch``; an ONNX file for an ONNX-source
card, run by ONNX Runtime) or a SavedModel directory (``tensorflow``; a TF Serving base dir with
numeric version subdirs picks the highest).

Same concurrency semantics as a server with the same budget (issue 11): every client of one
process shares ONE :class:`InstancePool` of ``workers`` model instances, each call runs on a
native OS thread of that pool, and a caller whose request finds every instance busy waits for
one. Latency is measured by the caller from the moment it issues the request, so the wait for a
free instance is in it, as a server's queue is. Under gevent (a Locust process) the caller's
greenlet waits cooperatively for the pool thread, so other users keep issuing requests and the
hub is never blocked by the model (a blocking call there would hide the queue: at c=4 the old
baseline reported 14.7 ms p50 at 40 req/s, where Little's law requires ~100 ms).

``intra_op_threads`` sets the framework's math threads per instance (the budget each TorchServe
worker gets); PyTorch applies ``set_num_threads`` to every calling thread, so ``workers``
instances use ``workers x intra_op_threads`` threads, as ``workers`` TorchServe workers do.
TensorFlow runs one loaded SavedModel (one session, as TF Serving does) called from ``workers``
pool threads. Thread settings are process-wide in both frameworks; ``threads_effective``
records what the framework actually uses. TensorFlow refuses changes once its runtime is
initialised: the TF client then raises (``strict_threads=True``, the default) rather than run a
baseline with a thread budget other than the one asked for — run each baseline in its own
process. Timeouts cannot interrupt a framework call; ``timeout_s`` is accepted and not enforced.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from servecmp.experiment import Protocol, Target
from servecmp.load.clients.base import TargetClient, TransportError
from servecmp.load.payloads import PayloadSet


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent comes with locust
        return False
    return bool(monkey.is_module_patched("threading"))


class InstancePool:
    """``workers`` model instances served by ``workers`` native threads; callers queue for them.

    ``run(fn)`` calls ``fn(instance)`` on a free instance and returns its result. In a
    gevent-patched process the call runs on a thread of a dedicated gevent ``ThreadPool``
    (``maxsize=workers``: a request beyond that waits in the pool's queue) and the calling
    greenlet yields until it is done. Without gevent, callers are native threads already: a
    native semaphore bounds them to ``workers``.
    """

    def __init__(self, instances: list[Any]) -> None:
        if not instances:
            raise ValueError("an instance pool needs at least one instance")
        self.workers = len(instances)
        # at most `workers` calls run at once, so popleft() always finds one (deque ops are
        # atomic under the GIL; no lock that gevent would patch)
        self._free: deque[Any] = deque(instances)
        self._pool: Any = None
        self._sem: Any = None

    def _on_instance(self, fn: Callable[[Any], Any]) -> Any:
        inst = self._free.popleft()
        try:
            return fn(inst)
        finally:
            self._free.append(inst)

    def run(self, fn: Callable[[Any], Any]) -> Any:
        if _gevent_patched():
            if self._pool is None:
                from gevent.threadpool import ThreadPool

                self._pool = ThreadPool(self.workers)  # idle threads stay: model state stays warm
            return self._pool.apply(self._on_instance, (fn,))
        if self._sem is None:
            self._sem = threading.BoundedSemaphore(self.workers)
        with self._sem:
            return self._on_instance(fn)

    def on_pool_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on one of the pool's threads (loading state that belongs to it)."""
        return self.run(lambda _inst: fn())


# One pool per (artifact, budget, payload set) and process: every user / client shares it.
_PT_POOLS: dict[tuple[str, int, int | None, int], tuple[InstancePool, list[Any], int]] = {}


class PyTorchInProcessClient(TargetClient):
    serves = (Protocol.inprocess,)

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        intra_op_threads: int | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(target, address, payloads, timeout_s)
        import torch

        self._torch = torch
        key = (str(address), int(workers), intra_op_threads, id(payloads))
        self._onnx = str(address).endswith(".onnx")
        if self._onnx and key not in _PT_POOLS:
            _PT_POOLS[key] = _onnx_pool(address, int(workers), intra_op_threads, payloads)
        if key not in _PT_POOLS:
            if intra_op_threads is not None:
                torch.set_num_threads(int(intra_op_threads))
            models = [
                torch.jit.load(str(address), map_location="cpu").eval() for _ in range(int(workers))
            ]
            pool = InstancePool(models)
            # what a pool thread really uses (PyTorch applies the budget per calling thread)
            threads = int(pool.on_pool_thread(torch.get_num_threads))
            # one tuple of tensors per payload: the model's inputs in the card's order
            inputs = [
                tuple(torch.from_numpy(a[i]) for a in payloads.all_inputs)
                for i in range(len(payloads))
            ]
            _PT_POOLS[key] = (pool, inputs, threads)
        self._pool, self._inputs, self.threads_effective = _PT_POOLS[key]
        self.workers = int(workers)

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        x = self._inputs[index]
        torch = self._torch

        def infer(model: Any) -> np.ndarray:
            if self._onnx:  # an ONNX source: an ONNX Runtime session, numpy feeds
                return np.asarray(model.run([self.payloads.output_name], x)[0])
            with torch.inference_mode():
                out = model(*x)
            if isinstance(out, dict):
                out = out[self.payloads.output_name]
            return out.detach().numpy()

        try:
            logits = self._pool.run(infer)
        except Exception as err:
            raise TransportError("inprocess", f"{type(err).__name__}: {err}") from None
        return self._logits_from_flat(logits), logits.nbytes


def _onnx_pool(
    address: str, workers: int, intra_op_threads: int | None, payloads: PayloadSet
) -> tuple[InstancePool, list[Any], int]:
    """``workers`` ONNX Runtime sessions on an ONNX source's file, each with the budget a
    PyTorch instance gets (intra-op = ``intra_op_threads``, inter-op 1): the ``pytorch``
    baseline of an ONNX card runs ONNX Runtime, and its provenance says so."""
    import onnxruntime as ort

    from servecmp.models.onnx_source import session_options

    sessions = [
        ort.InferenceSession(
            str(address),
            sess_options=session_options(intra_op_threads),
            providers=["CPUExecutionProvider"],
        )
        for _ in range(workers)
    ]
    threads = int(sessions[0].get_session_options().intra_op_num_threads)
    feeds = [
        {
            n: np.ascontiguousarray(a[i])
            for n, a in zip(payloads.names, payloads.all_inputs, strict=True)
        }
        for i in range(len(payloads))
    ]
    return InstancePool(sessions), feeds, threads


def saved_model_dir(path: str | Path) -> Path:
    p = Path(path)
    if (p / "saved_model.pb").is_file():
        return p
    versions = [d for d in p.iterdir() if d.is_dir() and d.name.isdigit()] if p.is_dir() else []
    if versions:
        return max(versions, key=lambda d: int(d.name))
    raise FileNotFoundError(f"{p}: no saved_model.pb (nor numeric version dirs holding one)")


# One loaded SavedModel (and its input tensors) per process, called from `workers` native threads.
# Under gevent (a Locust process), TensorFlow's per-thread eager context becomes per-greenlet and
# calls from another greenlet come back in graph mode (SymbolicTensor outputs). So in a patched
# process every TensorFlow call, the load included, runs on a native thread of the pool (the
# greenlet waits cooperatively); the thread hand-off costs tens of microseconds per call,
# negligible against the model's compute.
_TF_POOLS: dict[tuple[str, str, int, int], tuple[InstancePool, Any, Any, list[Any]]] = {}


class TensorFlowInProcessClient(TargetClient):
    serves = (Protocol.inprocess,)

    def __init__(
        self,
        target: Target,
        address: str,
        payloads: PayloadSet,
        timeout_s: float,
        *,
        intra_op_threads: int | None = None,
        workers: int = 1,
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
        key = (str(saved_model_dir(address)), signature_name, int(workers), id(payloads))
        if key not in _TF_POOLS:
            pool = InstancePool([None] * int(workers))  # one session, `workers` calling threads

            def load() -> tuple[Any, Any, list[Any]]:
                loaded = tf.saved_model.load(key[0])
                # every input of the signature, by the card's names (the port keeps them as
                # the signature's names, models/port.py), each in its own dtype
                named = list(zip(payloads.names, payloads.all_inputs, strict=True))
                inputs = [{n: tf.constant(a[i]) for n, a in named} for i in range(len(payloads))]
                return loaded, loaded.signatures[signature_name], inputs

            _TF_POOLS[key] = (pool, *pool.on_pool_thread(load))
        self._pool, self._loaded, self._fn, self._inputs = _TF_POOLS[key]
        self.workers = int(workers)

    def _exchange(self, index: int) -> tuple[np.ndarray, int]:
        name = self.payloads.output_name
        x = self._inputs[index]

        def infer(_inst: Any) -> dict[str, np.ndarray]:
            out = self._fn(**x)
            return {k: v.numpy() for k, v in out.items()}

        try:
            out = self._pool.run(infer)
        except Exception as err:
            raise TransportError("inprocess", f"{type(err).__name__}: {err}") from None
        if name not in out:
            raise TransportError("decode", f"signature outputs {list(out)} lack {name!r}")
        logits = out[name]
        return self._logits_from_flat(logits), logits.nbytes
