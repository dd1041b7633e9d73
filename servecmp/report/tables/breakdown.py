"""Where the time goes: each target's mean latency split into outside the server, queue,
pre/post-processing and model compute (``StepResult.breakdown``), per load level, and one
sentence per target naming its largest part. A cell's part is the median over its comparable
repeats that report it; a part no repeat reports says so (never 0)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from servecmp.report.cells import Param, cells, param_label, params, targets
from servecmp.report.data import RunData
from servecmp.report.servers import server_label
from servecmp.report.table import Table
from servecmp.results.schema import BreakdownPart

PARTS = ("outside", "queue", "pre_post", "compute")
PART_LABEL = {
    "outside": "outside the server",
    "queue": "queue",
    "pre_post": "pre/post-processing",
    "compute": "model compute",
}


@dataclass
class PartCell:
    ms: float | None
    source: str
    why: str | None
    note: str = ""


@dataclass
class BreakdownCell:
    """One target at one load level, over its comparable repeats."""

    target: str
    server: str
    param: Param
    client_mean_ms: float | None
    parts: dict[str, PartCell]
    total_source: str
    means_only: bool
    repeats: int
    flagged: list[str] = field(default_factory=list)  # the self-check failures, one per repeat
    not_reported: str | None = None

    def share(self, part: str) -> float | None:
        ms = self.parts[part].ms
        if ms is None or not self.client_mean_ms:
            return None
        return ms / self.client_mean_ms


def _merge(parts: list[BreakdownPart]) -> PartCell:
    vals = [p.ms for p in parts if p.ms is not None]
    last = parts[-1]
    why = next((p.why for p in reversed(parts) if p.why), None)
    return PartCell(
        ms=float(statistics.median(vals)) if vals else None,
        source=last.source,
        why=None if vals else why,
        note=last.note,
    )


def breakdown_cells(run: RunData) -> list[BreakdownCell]:
    out: list[BreakdownCell] = []
    cs = cells(run)
    for p in params(run):
        for t in targets(run):
            c = cs.get((t.name, p))
            if c is None:
                continue
            steps = [s for s in c.valid_steps if s.breakdown is not None]
            if not steps:
                continue
            bds = [s.breakdown for s in steps if s.breakdown is not None]
            by_part = {name: [q for b in bds for q in b.parts if q.part == name] for name in PARTS}
            means = [b.client_mean_ms for b in bds if b.client_mean_ms is not None]
            out.append(
                BreakdownCell(
                    target=t.name,
                    server=t.server,
                    param=p,
                    client_mean_ms=float(statistics.median(means)) if means else None,
                    parts={
                        n: _merge(v) if v else PartCell(None, "", "not recorded")
                        for n, v in by_part.items()
                    },
                    total_source=bds[-1].total_source,
                    means_only=bds[-1].means_only,
                    repeats=len(bds),
                    flagged=[b.flagged for b in bds if b.flagged],
                    not_reported=bds[-1].not_reported,
                )
            )
    return out


def ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g} ms"


def _part_text(c: BreakdownCell, part: str) -> str:
    pc = c.parts[part]
    if pc.ms is None:
        return pc.why or "not reported"
    share = c.share(part)
    return ms(pc.ms) + (f" ({share:.0%})" if share is not None else "")


def version_of(run: RunData, server: str) -> str:
    """The server's version as the run recorded it (meta.versions), else its label."""
    v = run.meta.versions.get(server)
    if v and str(v).startswith("ONNX Runtime "):
        return str(v)  # the `pytorch` baseline of an ONNX card ran no PyTorch: name what did
    return f"{server_label(server)} (ran {v})" if v else server_label(server)


def breakdown_table(run: RunData) -> Table:
    t = Table(
        [
            "target",
            "load",
            "client mean",
            *(PART_LABEL[p] for p in PARTS),
            "self-check",
            "server, sources",
        ],
        [],
    )
    for c in breakdown_cells(run):
        check = (
            f"FLAGGED in {len(c.flagged)} of {c.repeats} repeat(s): {c.flagged[0]}"
            if c.flagged
            else "ok"
        )
        sources = "; ".join(
            f"{PART_LABEL[p]}: {c.parts[p].source}" for p in PARTS if c.parts[p].source
        )
        means = " (means only: the server keeps sums, no histogram)" if c.means_only else ""
        t.add(
            [
                c.target,
                param_label(c.param),
                ms(c.client_mean_ms) if c.client_mean_ms is not None else "no ok answer",
                *(_part_text(c, p) for p in PARTS),
                check,
                f"{version_of(run, c.server)}{means}; {sources}",
            ],
            ["", "", "", *("" if c.parts[p].ms is not None else "notrecorded" for p in PARTS),
             "invalid" if c.flagged else "", ""],
        )  # fmt: skip
    return t


def largest_part_sentences(run: RunData) -> list[str]:
    """Per target, at its highest load level with a breakdown: the largest reported part."""
    last: dict[str, BreakdownCell] = {}
    for c in breakdown_cells(run):
        last[c.target] = c  # params ascend: the last one is the highest load
    out: list[str] = []
    for target, c in last.items():
        shares = {p: s for p in PARTS if (s := c.share(p)) is not None}
        if c.flagged:
            out.append(f"{target}: no split stated — the self-check failed ({c.flagged[0]}).")
            continue
        if not shares or c.client_mean_ms is None:
            out.append(f"{target}: no part reported ({c.not_reported or 'no server counters'}).")
            continue
        top = max(shares, key=lambda p: shares[p])
        missing = [PART_LABEL[p] for p in PARTS if p not in shares]
        out.append(
            f"{target} at {param_label(c.param)}: {shares[top]:.0%} of the client's "
            f"{c.client_mean_ms:.3g} ms mean is {PART_LABEL[top]} "
            f"({c.parts[top].source or 'derived'})"
            + (f"; not reported: {', '.join(missing)}" if missing else "")
            + "."
        )
    return out
