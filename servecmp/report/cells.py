"""Targets, load parameters and cells: which steps give a number, and which do not (and why).

A *cell* is one target at one load parameter (closed loop: concurrency; open loop: rate); only
*comparable* steps (valid, steady, undisturbed: ``StepResult.comparable``) give numbers; the
cell's number is the median over its comparable repeats.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from servecmp.experiment import Protocol
from servecmp.report.data import RunData
from servecmp.results.metrics import METRICS
from servecmp.results.schema import StepResult


@dataclass(frozen=True)
class TargetInfo:
    name: str
    server: str
    protocol: str
    encoding: str
    baseline: bool
    native_extra: bool
    unavailable: str | None  # reason, None when available (or unknown)

    @property
    def kind(self) -> str:
        if self.baseline:
            return "baseline (in-process, no server)"
        if self.native_extra:
            return "native-encoding extra"
        return "server"

    @property
    def label(self) -> str:
        if self.baseline:
            return f"{self.name} [baseline]"
        if self.native_extra:
            return f"{self.name} [native extra]"
        return self.name


def is_native_extra(server: str, protocol: str, encoding: str) -> bool:
    """Whether a target's encoding is one of its server's labelled extras (every encoding after
    the first its adapter lists for the protocol, as ``Target.is_native_extra``); a server no
    longer registered falls back to the extras of the first two servers (raw, b64)."""
    from servecmp.servers import registry

    try:
        listed = registry.get(server).encodings(Protocol(protocol))
    except (KeyError, ValueError):
        return encoding in ("raw", "b64")
    return bool(listed) and encoding != listed[0].value


def target_info(run: RunData, name: str) -> TargetInfo:
    step = next((s for s in run.steps if s.target == name), None)
    if step is not None:
        server, protocol, encoding = step.server, step.protocol, step.encoding
    elif name.endswith("-inprocess"):
        server, protocol, encoding = name.removesuffix("-inprocess"), "inprocess", "ndarray"
    else:
        parts = name.split("-")
        server = parts[0]
        protocol = parts[1] if len(parts) > 1 else "?"
        encoding = "-".join(parts[2:]) or str(run.meta.payload.get("encodings", {}).get(name, "?"))
    return TargetInfo(
        name=name,
        server=server,
        protocol=protocol,
        encoding=encoding,
        baseline=protocol == "inprocess",
        native_extra=is_native_extra(server, protocol, encoding),
        unavailable=run.unavailable_reason(name),
    )


def targets(run: RunData) -> list[TargetInfo]:
    return [target_info(run, n) for n in run.target_names()]


def protocols(run: RunData) -> list[str]:
    """The network protocols the run's server targets speak: known ones in ``Protocol`` order,
    then any other a stored run names."""
    found = {t.protocol for t in targets(run) if not t.baseline and t.protocol != "?"}
    known = [p.value for p in Protocol if p is not Protocol.inprocess and p.value in found]
    return known + sorted(found - set(known))


# ---- load parameters -------------------------------------------------------------------------
Param = tuple[str, float]  # ("concurrency", 4) | ("rate", 40.0)


def param_of(s: StepResult) -> Param:
    if s.mode == "closed_loop":
        return ("concurrency", float(s.concurrency or 0))
    return ("rate", float(s.rate if s.rate is not None else (s.offered_rps or 0.0)))


def param_label(p: Param) -> str:
    kind, v = p
    num = f"{v:g}"
    return f"concurrency {num}" if kind == "concurrency" else f"rate {num} req/s"


def params(run: RunData) -> list[Param]:
    return sorted({param_of(s) for s in run.steps})


# ---- cells -----------------------------------------------------------------------------------
def not_comparable_reason(s: StepResult) -> str | None:
    """Why ``s`` gives no number (None: it is comparable)."""
    if not s.valid:
        return f"invalid: {s.invalid_reason or s.error or 'marked invalid without a reason'}"
    if s.disrupted is not None:
        return f"disrupted: {s.disrupted}"
    if not s.steady:
        return f"not steady: {s.unsteady_reason or 'its windows did not agree'}"
    return None


@dataclass
class Cell:
    target: str
    param: Param
    steps: list[StepResult]  # every repeat, in file order

    @property
    def valid_steps(self) -> list[StepResult]:
        """The comparable steps (valid, steady, undisturbed): the only ones that give numbers."""
        return [s for s in self.steps if s.comparable]

    @property
    def rep(self) -> StepResult | None:
        """The last comparable repeat (histograms, stop reason, CPU); None: none comparable."""
        v = self.valid_steps
        return v[-1] if v else None

    @property
    def last(self) -> StepResult | None:
        return self.steps[-1] if self.steps else None

    @property
    def invalid_reason(self) -> str | None:
        """Why the cell has no number (the last step's reason), None when it has one."""
        if self.rep is not None or not self.steps:
            return None
        return not_comparable_reason(self.steps[-1]) or "not comparable"

    @property
    def status_class(self) -> str:
        return "invalid" if self.invalid_reason else ""

    def values(self, metric: str) -> list[float]:
        m = METRICS[metric]
        return [v for s in self.valid_steps if (v := m.value(s)) is not None]

    def value(self, metric: str) -> float | None:
        """Median over the comparable repeats."""
        vs = self.values(metric)
        return float(statistics.median(vs)) if vs else None

    def by_repeat(self, metric: str) -> dict[int, float]:
        """The metric of the last comparable step of each interleaved round."""
        m = METRICS[metric]
        out: dict[int, float] = {}
        for s in self.valid_steps:
            v = m.value(s)
            if v is not None:
                out[s.repeat] = v
        return out


def cells(run: RunData) -> dict[tuple[str, Param], Cell]:
    out: dict[tuple[str, Param], Cell] = {}
    for s in run.steps:
        key = (s.target, param_of(s))
        out.setdefault(key, Cell(s.target, key[1], [])).steps.append(s)
    return out


def reported_windows(s: StepResult) -> list[Any]:
    if s.reported_windows and s.reported_windows <= len(s.windows):
        return list(s.windows[-s.reported_windows :])
    return list(s.windows)


def main_target(infos: list[TargetInfo], server: str, protocol: str) -> TargetInfo | None:
    for t in infos:
        if t.server == server and t.protocol == protocol and not t.native_extra:
            return t
    return None
