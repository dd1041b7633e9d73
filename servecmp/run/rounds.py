"""The order of a round's steps and which in-process baselines a round needs.

Verdicts compare the same protocol across servers, paired by round: the closer in time the two
steps of a pair, the less of the machine's drift lands in their ratio. So a round runs protocol by
protocol with the servers' targets of one protocol side by side (TorchServe REST, KServe REST,
TorchServe gRPC, KServe gRPC …), native-encoding extras after their protocol's common targets,
and the baselines last; every other round runs that order backwards (A B, B A: counterbalanced).
No paired verdict rests on an in-process baseline, so ``load.baseline_rounds: first`` measures the
baselines in round 1 only and leaves the other rounds to the pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from servecmp.experiment import Load, Target

S = TypeVar("S")


def interleaved_order(
    groups: Sequence[tuple[S | None, list[Target]]],
) -> list[tuple[S | None, Target]]:
    """``groups``: (server or None for in-process baselines, its targets), in server order.
    Returns every (server, target) once, ordered so same-protocol pairs are adjacent."""
    served = [(s, t) for s, ts in groups if s is not None for t in ts]
    baselines = [(s, t) for s, ts in groups if s is None for t in ts]
    protocols: list[str] = []
    for _, t in served:
        if t.protocol.value not in protocols:
            protocols.append(t.protocol.value)
    out: list[tuple[S | None, Target]] = []
    for proto in protocols:
        of_proto = [(s, t) for s, t in served if t.protocol.value == proto]
        out += [(s, t) for s, t in of_proto if not t.is_native_extra]
        out += [(s, t) for s, t in of_proto if t.is_native_extra]
    return out + baselines


def unpaired_baselines(
    baselines: Sequence[Target],
    wanted_servers: Sequence[str],
    up_servers: Sequence[str],
    framework: Callable[[str], str],
) -> dict[str, str]:
    """Baselines not worth a step: the experiment has servers of the baseline's framework, and
    none of them is up, so nothing would be compared with it. Maps target name to the reason.
    A baseline of an experiment without such servers (baselines only) is always run."""
    out: dict[str, str] = {}
    for b in baselines:
        fw = framework(b.server)
        wanted = [s for s in wanted_servers if framework(s) == fw]
        if wanted and not any(framework(s) == fw for s in up_servers):
            out[b.name] = (
                f"not run: every {fw} server of the experiment ({', '.join(wanted)}) is "
                "unavailable, so nothing would be compared with this baseline"
            )
    return out


def baseline_round(load: Load, r: int) -> bool:
    """Whether round ``r`` (0-based) measures the in-process baselines."""
    return load.baseline_rounds == "every" or r == 0


def planned_steps(load: Load, targets: Sequence[Target]) -> int:
    """Steps per load level over all rounds: every served target in each round, the baselines
    in the rounds ``baseline_round`` picks."""
    served = sum(not t.is_baseline for t in targets)
    baselines = len(targets) - served
    return served * load.repeats + baselines * sum(
        baseline_round(load, r) for r in range(load.repeats)
    )
