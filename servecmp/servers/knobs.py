"""The ``servecmp tune`` knobs several servers share, built in one place.

Each server's ``search.py`` picks the knobs its rendering reads, in its own order, and passes the
citation from its own documentation; the field names, the default candidate values and the
``known`` list live here. The default values stay inside the experiment's fixed budget (the CPU
set and memory limit never change): one or two model instances, one or two math threads each.
"""

from __future__ import annotations

from collections.abc import Iterable

from servecmp.servers.base import Knob, SearchSpace

WORKERS = "tuning.workers"
INTRA_OP_THREADS = "tuning.intra_op_threads"
IO_THREADS = "tuning.io_threads"
BATCHING = "tuning.batching.enabled"
MAX_BATCH_SIZE = "tuning.batching.max_batch_size"
BATCH_TIMEOUT_MS = "tuning.batching.batch_timeout_ms"
MAX_ENQUEUED_BATCHES = "tuning.batching.max_enqueued_batches"
LOGGING = "tuning.logging"

# The order ``known`` is listed in (servecmp tune's error messages name the fields in this order).
FIELDS = (
    WORKERS,
    INTRA_OP_THREADS,
    IO_THREADS,
    BATCHING,
    MAX_BATCH_SIZE,
    BATCH_TIMEOUT_MS,
    MAX_ENQUEUED_BATCHES,
    LOGGING,
)


def workers(source: str, values: tuple[int, ...] = (1, 2), protocols: tuple[str, ...] = ()) -> Knob:
    """Model instances (workers, replicas, instance count, inter-op runs)."""
    return Knob(field=WORKERS, values=values, source=source, protocols=protocols)


def intra_op_threads(source: str, values: tuple[int, ...] = (1, 2)) -> Knob:
    """Math threads per instance."""
    return Knob(field=INTRA_OP_THREADS, values=values, source=source)


def io_threads(source: str, values: tuple[int, ...], protocols: tuple[str, ...] = ()) -> Knob:
    """The front end's request threads (no shared default: each server sizes its own)."""
    return Knob(field=IO_THREADS, values=values, source=source, protocols=protocols)


def logging(source: str) -> Knob:
    """The server's own logging against warnings only (``Tuning.logging``)."""
    return Knob(field=LOGGING, values=("default", "quiet"), source=source)


def batching(
    enabled: str,
    max_batch_size: str | None = None,
    batch_timeout_ms: str | None = None,
    *,
    sizes: tuple[int, ...] = (4, 8),
    timeouts_ms: tuple[float, ...] = (5.0,),
) -> tuple[Knob, ...]:
    """Server-side batching off/on, then the batch size and the wait for a batch where the
    server's documentation is cited for them (``None``: not searched)."""
    out = [Knob(field=BATCHING, values=(False, True), source=enabled)]
    if max_batch_size is not None:
        out.append(Knob(field=MAX_BATCH_SIZE, values=sizes, source=max_batch_size))
    if batch_timeout_ms is not None:
        out.append(Knob(field=BATCH_TIMEOUT_MS, values=timeouts_ms, source=batch_timeout_ms))
    return tuple(out)


def space(*knobs: Knob, reads: Iterable[str] = ()) -> SearchSpace:
    """The searched ``knobs`` (in the order given); ``reads``: the fields the server's config also
    reads without searching them, so ``servecmp tune`` accepts them and refuses any other."""
    fields = {k.field for k in knobs} | set(reads)
    unknown = sorted(fields - set(FIELDS))
    if unknown:
        raise ValueError(f"knobs.space: unknown field(s) {', '.join(unknown)}; known: {FIELDS}")
    return SearchSpace(knobs=knobs, known=tuple(f for f in FIELDS if f in fields))
