"""Warm-up (not recorded): slices until p50 latency stops falling, within its bounds.

Slices of ``WARMUP_SLICE_S`` (bounded by the configured warm-up) run until a slice's p50 is not
below the previous slice's by more than the stability tolerance — after at least
``load.warmup_s``, at the latest after ``StepSpec.warmup_bound_s()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from servecmp.experiment import Load
from servecmp.load.engine.recorder import Window

WARMUP_SLICE_S = (0.25, 1.0)

WarmupEnd = Literal["latency_flat", "bound", "off"]


@dataclass(frozen=True)
class Warmup:
    seconds: float  # wall seconds the warm-up ran (0 when off)
    end: WarmupEnd
    slices_p50_ms: list[float | None] = field(default_factory=list)


def slice_length(warmup_s: float) -> float:
    return min(max(warmup_s / 2, WARMUP_SLICE_S[0]), WARMUP_SLICE_S[1])


def latency_flat(prev_p50: float | None, p50: float | None, tolerance: float) -> bool:
    """A slice ends the warm-up when its p50 is no more than ``tolerance`` below the previous."""
    return p50 is not None and prev_p50 is not None and p50 >= prev_p50 * (1 - tolerance)


def warm_up(
    run_slice: Callable[[float], Window],
    load: Load,
    bound_s: float,
    *,
    clock: Callable[[], float],
    stopped: Callable[[], bool],
) -> Warmup:
    """Run warm-up slices (``run_slice(seconds)`` runs load for that long and returns the slice's
    window) until latency is flat, ``bound_s`` passed or ``stopped()`` (the step's budget)."""
    if load.warmup_s <= 0:
        return Warmup(0.0, "off")
    t0 = clock()
    length = slice_length(load.warmup_s)
    prev: float | None = None
    slices: list[float | None] = []
    end: WarmupEnd = "bound"
    while clock() - t0 < bound_s and not stopped():
        p50 = run_slice(min(length, bound_s - (clock() - t0))).summary().p50_ms
        slices.append(p50)
        if clock() - t0 >= load.warmup_s and latency_flat(prev, p50, load.stability.tolerance):
            end = "latency_flat"
            break
        prev = p50 if p50 is not None else prev
    return Warmup(clock() - t0, end, slices)
