"""CPU placement: disjoint CPU sets for the servers and the load generator on a small machine.

On 2 cores a server and its load generator fight for the same core unless pinned; the placement
is recorded with the results so a reader knows what each number ran on.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CpuPlacement:
    pinned: bool
    server_cpus: tuple[int, ...]
    generator_cpus: tuple[int, ...]
    available: tuple[int, ...]
    note: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def available_cpus() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0)))


def plan(cpus_budget: float, mode: str, available: tuple[int, ...] | None = None) -> CpuPlacement:
    """Servers get the last ``ceil(cpus)`` CPUs, the generator the rest (at least one).

    ``mode``: ``on`` (fail when impossible), ``off``, ``auto`` (pin when it fits).
    """
    avail = available if available is not None else available_cpus()
    need = max(1, math.ceil(cpus_budget))
    fits = len(avail) >= need + 1
    if mode == "off" or (mode == "auto" and not fits):
        why = (
            "pinning off by experiment"
            if mode == "off"
            else (
                f"pinning off: {len(avail)} CPU(s) cannot hold {need} server CPU(s) + 1 generator CPU"
            )
        )
        return CpuPlacement(False, avail, avail, avail, why)
    if not fits:
        raise ValueError(
            f"resources.pinning: 'on' needs {need} server CPU(s) + 1 for the generator, "
            f"but only {len(avail)} are available ({list(avail)})"
        )
    server = avail[-need:]
    gen = avail[: len(avail) - need]
    return CpuPlacement(
        True, server, gen, avail, f"servers on {list(server)}, generator on {list(gen)}"
    )


def pin_self(cpus: tuple[int, ...]) -> None:
    os.sched_setaffinity(0, set(cpus))


@contextlib.contextmanager
def pinned(cpus: tuple[int, ...] | None) -> Iterator[None]:
    """This process on ``cpus`` (the generator's) for the block, its affinity restored after;
    ``None``: unchanged (pinning off)."""
    before = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
