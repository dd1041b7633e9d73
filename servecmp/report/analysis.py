"""Numbers the report shows, computed once and rendered to both HTML and Markdown.

Conventions (also written into the report itself, see ``NOISE_RULE`` / ``REPRESENTATIVE_RULE``):

* a *cell* is one target at one load parameter (closed loop: concurrency; open loop: rate);
* the cell's number is its *last valid* step (repeats feed the noise estimate; every step is
  listed in the "All steps" table); a cell whose steps are all invalid shows the reason, never a
  number;
* two numbers differ significantly only when their relative difference exceeds
  ``max(MIN_REL_DIFF, noise(a), noise(b))`` (see :func:`noise`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from servecmp.observability import names as obs_names
from servecmp.report.data import RunData
from servecmp.results.friction import FRICTION_METRICS, FrictionRecord
from servecmp.results.metrics import METRICS, Better, Metric
from servecmp.results.schema import StepResult

MIN_REL_DIFF = 0.05  # below 5 % nothing is called a difference, however quiet the run
STANDARD_SLOS_MS = (25.0, 50.0, 100.0, 250.0)
MAX_ERROR_FRACTION_FOR_SLO = 0.001  # a step "meets" an SLO only with ≤ 0.1 % failed requests
NOT_SIGNIFICANT = "not significant"

NOISE_RULE = (
    "Two numbers a and b (same metric) differ significantly only when |a - b| / ((a + b) / 2) is "
    f"greater than max({MIN_REL_DIFF:.0%}, noise(a), noise(b)); otherwise they are labelled "
    f"“{NOT_SIGNIFICANT}”. noise(x) of one target at one load parameter is the largest of: "
    "(1) the spread (max - min) / mean of that metric over repeated steps (same target and "
    "parameter measured more than once, valid steps only); (2) the spread (max - min) / mean over "
    "the step's reported measurement windows of the window statistic that tracks the metric "
    "(window throughput for throughput; window p50 for p50 and mean; window p99 for p90 … max). "
    "Window spread is conservative: the step's own number is computed over all reported windows "
    "together, so it is less noisy than any single window."
)
REPRESENTATIVE_RULE = (
    "When a target was measured more than once at the same load parameter, the tables show its last "
    "valid step; all repeats are listed under “All steps” and feed the noise estimate. Invalid "
    "steps (valid = false) never appear as a server number: their cells say “invalid” and the "
    "validity row gives the reason."
)

# window statistic that tracks each metric (for the within-step noise estimate)
_WINDOW_STAT: dict[str, str] = {
    "throughput_rps": "throughput_rps",
    "achieved_rps": "throughput_rps",
    "latency_p50_ms": "p50_ms",
    "latency_mean_ms": "p50_ms",
    "latency_p90_ms": "p99_ms",
    "latency_p95_ms": "p99_ms",
    "latency_p99_ms": "p99_ms",
    "latency_p999_ms": "p99_ms",
    "latency_max_ms": "p99_ms",
}
NOISY_METRICS = tuple(_WINDOW_STAT)

# decimals per unit: the Markdown shows round(value, DECIMALS[unit])
DECIMALS: dict[str, int] = {"req/s": 2, "ms": 3, "fraction": 4, "count": 0, "cores": 3}

BASELINE_OF = {"torchserve": "pytorch-inprocess", "tfserving": "tensorflow-inprocess"}
SERVERS = ("torchserve", "tfserving")
SERVER_LABEL = {"torchserve": "TorchServe", "tfserving": "TF Serving"}


# ---- formatting ------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    d = DECIMALS.get(unit, 3)
    if d == 0:
        return str(round(value))
    return f"{value:.{d}f}"


def fmt_pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def fmt_bytes(b: float | None) -> str:
    if b is None:
        return "—"
    return f"{b / 2**20:.1f} MiB"


# ---- targets ---------------------------------------------------------------------------------
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
        native_extra=encoding in ("raw", "b64"),
        unavailable=run.unavailable_reason(name),
    )


def targets(run: RunData) -> list[TargetInfo]:
    return [target_info(run, n) for n in run.target_names()]


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
@dataclass
class Cell:
    target: str
    param: Param
    steps: list[StepResult]  # every repeat, in file order

    @property
    def valid_steps(self) -> list[StepResult]:
        # comparable = valid, steady and undisturbed (issue 11): only those feed the verdicts
        return [s for s in self.steps if s.comparable]

    @property
    def rep(self) -> StepResult | None:
        """The step whose numbers the tables show: the last valid repeat (None: none valid)."""
        v = self.valid_steps
        return v[-1] if v else None

    @property
    def last(self) -> StepResult | None:
        return self.steps[-1] if self.steps else None

    @property
    def invalid_reason(self) -> str | None:
        if self.rep is not None or not self.steps:
            return None
        s = self.steps[-1]
        return s.invalid_reason or s.error or "marked invalid without a reason"

    def value(self, metric: str) -> float | None:
        return METRICS[metric].value(self.rep) if self.rep is not None else None


def cells(run: RunData) -> dict[tuple[str, Param], Cell]:
    out: dict[tuple[str, Param], Cell] = {}
    for s in run.steps:
        key = (s.target, param_of(s))
        out.setdefault(key, Cell(s.target, key[1], [])).steps.append(s)
    return out


def _spread(values: Iterable[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    if len(vs) < 2:
        return None
    mean = sum(vs) / len(vs)
    if mean <= 0:
        return None
    return (max(vs) - min(vs)) / mean


def reported_windows(s: StepResult) -> list[Any]:
    if s.reported_windows and s.reported_windows <= len(s.windows):
        return list(s.windows[-s.reported_windows :])
    return list(s.windows)


def noise(cell: Cell, metric: str) -> float:
    """Relative run-to-run noise of ``metric`` in this cell (0.0 when nothing tells us)."""
    if metric not in _WINDOW_STAT:
        return 0.0
    m = METRICS[metric]
    parts: list[float] = []
    rep_spread = _spread(m.value(s) for s in cell.valid_steps)
    if rep_spread is not None:
        parts.append(rep_spread)
    if cell.rep is not None:
        stat = _WINDOW_STAT[metric]
        w_spread = _spread(getattr(w, stat) for w in reported_windows(cell.rep))
        if w_spread is not None:
            parts.append(w_spread)
    return max(parts, default=0.0)


@dataclass(frozen=True)
class Verdict:
    a: float
    b: float
    rel_diff: float
    threshold: float
    significant: bool
    better: str | None  # "a" | "b" | None (not significant, equal or no direction)

    @property
    def label(self) -> str:
        return "significant" if self.significant else NOT_SIGNIFICANT


def compare_values(metric: Metric, a: float, b: float, noise_a: float, noise_b: float) -> Verdict:
    mean = (abs(a) + abs(b)) / 2
    rel = abs(a - b) / mean if mean > 0 else 0.0
    thr = max(MIN_REL_DIFF, noise_a, noise_b)
    sig = rel > thr
    better = None
    if sig and metric.better is not Better.neither:
        better = "a" if metric.is_better(a, b) else "b"
    return Verdict(a, b, rel, thr, sig, better)


def compare_cells(metric: str, ca: Cell, cb: Cell) -> Verdict | None:
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    return compare_values(METRICS[metric], va, vb, noise(ca, metric), noise(cb, metric))


# ---- tables (rendered to both HTML and Markdown from the same strings) -----------------------
@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    classes: list[list[str]] = field(default_factory=list)  # css class per cell (HTML only)
    caption: str = ""

    def add(self, row: list[str], cls: list[str] | None = None) -> None:
        self.rows.append(row)
        self.classes.append(cls or [""] * len(row))


ROW_METRICS = [
    "throughput_rps",
    "achieved_rps",
    "offered_rps",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "latency_max_ms",
    "latency_mean_ms",
    "error_fraction",
    "wrong_answers",
    "transport_errors",
    "late_send_fraction",
    "generator_cpu",
]
METRIC_LABEL = {
    "throughput_rps": "throughput",
    "achieved_rps": "achieved (any outcome)",
    "offered_rps": "offered rate",
    "latency_p50_ms": "p50",
    "latency_p90_ms": "p90",
    "latency_p95_ms": "p95",
    "latency_p99_ms": "p99",
    "latency_p999_ms": "p99.9",
    "latency_max_ms": "max",
    "latency_mean_ms": "mean",
    "error_fraction": "error fraction",
    "wrong_answers": "wrong answers",
    "transport_errors": "transport errors (all kinds)",
    "late_send_fraction": "late sends (fraction)",
    "generator_cpu": "generator CPU",
}


def best_label(metric: str, cands: list[tuple[TargetInfo, Cell]]) -> tuple[str, str]:
    """Best non-baseline target by ``metric`` and whether it beats the runner-up beyond noise."""
    m = METRICS[metric]
    if m.better is Better.neither or metric not in _WINDOW_STAT:
        return "", ""
    vals: list[tuple[TargetInfo, Cell, float]] = []
    for t, c in cands:
        v_ = c.value(metric)
        if not t.baseline and v_ is not None:
            vals.append((t, c, v_))
    if len(vals) < 2:
        return "", ""
    vals.sort(key=lambda x: x[2], reverse=m.better is Better.higher)
    (t1, c1, _), (t2, c2, _) = vals[0], vals[1]
    v = compare_cells(metric, c1, c2)
    assert v is not None
    if not v.significant:
        return (
            f"{t1.name} ≈ {t2.name}: {NOT_SIGNIFICANT} (Δ {fmt_pct(v.rel_diff)} ≤ {fmt_pct(v.threshold)})",
            "ns",
        )
    return f"{t1.name} (Δ {fmt_pct(v.rel_diff)} vs {t2.name} > {fmt_pct(v.threshold)})", "win"


def side_by_side(run: RunData, param: Param) -> Table:
    infos = targets(run)
    cs = cells(run)
    headers = ["metric", "unit", "better", *(t.label for t in infos), "best (non-baseline)"]
    table = Table(headers, [])
    cand = [(t, cs[(t.name, param)]) for t in infos if (t.name, param) in cs and not t.unavailable]

    def cell_text(t: TargetInfo, fn: Callable[[Cell], str]) -> tuple[str, str]:
        if t.unavailable:
            return "unavailable", "unavail"
        c = cs.get((t.name, param))
        if c is None:
            return "not measured", "na"
        if c.rep is None:
            return "invalid", "invalid"
        return fn(c), ""

    # validity first: the reader sees at once which columns hold numbers
    row, cls = ["step validity", "", ""], ["", "", ""]
    for t in infos:
        c = cs.get((t.name, param))
        if t.unavailable:
            row.append(f"unavailable: {t.unavailable}")
            cls.append("unavail")
        elif c is None:
            row.append("not measured")
            cls.append("na")
        elif c.rep is None:
            row.append(f"invalid: {c.invalid_reason}")
            cls.append("invalid")
        else:
            n_inv = len(c.steps) - len(c.valid_steps)
            extra = f" ({len(c.steps)} steps, {n_inv} invalid)" if n_inv else ""
            row.append(f"valid{extra}")
            cls.append("")
    table.add([*row, ""], [*cls, ""])

    def add_row(label: str, unit: str, better: str, fn: Callable[[Cell], str], best: tuple[str, str] = ("", "")) -> None:
        """One metric row: a cell per target (or why it has no number), then the best column."""
        texts, classes = zip(*(cell_text(t, fn) for t in infos), strict=True) if infos else ((), ())
        table.add([label, unit, better, *texts, best[0]], ["", "", "", *classes, best[1]])

    add_row("repeats", "steps", "", lambda c: str(len(c.valid_steps)))
    for name in ROW_METRICS:
        m = METRICS[name]
        if name in ("offered_rps", "late_send_fraction") and param[0] == "concurrency":
            continue
        add_row(METRIC_LABEL[name], m.unit, m.better.value, functools.partial(_metric_text, name),
                best_label(name, cand))
    for kind in sorted({k for s in run.steps for k in s.transport_errors}):
        add_row(f"transport errors: {kind}", "count", "lower", functools.partial(_errors_of_kind, kind))
    if param[0] == "rate":
        add_row("late sends (count)", "count", "lower", _late_total)
    add_row("server CPU (during step)", "cores", "neither", _server_cpu)
    add_row("stop reason", "", "", _stop_reason)
    return table


def _metric_text(name: str, c: Cell) -> str:
    return fmt(c.value(name), METRICS[name].unit)


def _errors_of_kind(kind: str, c: Cell) -> str:
    return str(c.rep.transport_errors.get(kind, 0)) if c.rep else ""


def _late_total(c: Cell) -> str:
    return str(c.rep.late.total) if c.rep and c.rep.late else "—"


def _server_cpu(c: Cell) -> str:
    gw = c.rep.generator if c.rep else None
    return fmt(gw.server_cpu_fraction if gw else None, "cores")


def _stop_reason(c: Cell) -> str:
    return c.rep.stop_reason if c.rep else ""


# ---- head to head: TorchServe vs TF Serving per protocol --------------------------------------
HEAD_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms")


def _main_target(infos: list[TargetInfo], server: str, protocol: str) -> TargetInfo | None:
    for t in infos:
        if t.server == server and t.protocol == protocol and not t.native_extra:
            return t
    return None


def head_to_head(run: RunData) -> Table:
    infos = targets(run)
    cs = cells(run)
    table = Table(
        ["load", "protocol", "metric", "unit", "TorchServe", "TF Serving", "difference", "verdict"], []
    )
    for p in params(run):
        for proto in ("rest", "grpc"):
            ta, tb = _main_target(infos, "torchserve", proto), _main_target(infos, "tfserving", proto)
            if ta is None and tb is None:
                continue
            for name in HEAD_METRICS:
                m = METRICS[name]
                row = [param_label(p), proto, METRIC_LABEL[name], m.unit]
                side: list[str] = []
                cl: list[Cell | None] = []
                for t in (ta, tb):
                    if t is None:
                        side.append("no target")
                        cl.append(None)
                    elif t.unavailable:
                        side.append(f"no data ({t.name} unavailable)")
                        cl.append(None)
                    elif (c := cs.get((t.name, p))) is None:
                        side.append("not measured")
                        cl.append(None)
                    elif c.rep is None:
                        side.append(f"invalid: {c.invalid_reason}")
                        cl.append(None)
                    else:
                        side.append(fmt(c.value(name), m.unit))
                        cl.append(c)
                ca, cb = cl
                if ca is None or cb is None:
                    table.add([*row, *side, "—", "no data"], ["", "", "", "", "", "", "", "na"])
                    continue
                v = compare_cells(name, ca, cb)
                assert v is not None
                diff = f"{fmt_pct(v.rel_diff)} (threshold {fmt_pct(v.threshold)})"
                if not v.significant:
                    verdict, vc = NOT_SIGNIFICANT, "ns"
                else:
                    winner = "TorchServe" if v.better == "a" else "TF Serving"
                    verdict, vc = f"{winner} better", "win"
                table.add([*row, *side, diff, verdict], ["", "", "", "", "", "", "", vc])
    return table


# ---- serving overhead vs in-process baselines ------------------------------------------------
def overhead(run: RunData) -> Table:
    infos = targets(run)
    cs = cells(run)
    table = Table(
        [
            "load",
            "target",
            "baseline",
            "p50 overhead (ms)",
            "p99 overhead (ms)",
            "throughput ratio (server / baseline)",
        ],
        [],
    )
    by_name = {t.name: t for t in infos}
    for p in params(run):
        for t in infos:
            if t.baseline or t.server not in BASELINE_OF:
                continue
            base = BASELINE_OF[t.server]
            row = [param_label(p), t.label, base]
            c, cb = cs.get((t.name, p)), cs.get((base, p))
            bi = by_name.get(base)
            why = None
            if t.unavailable:
                why = "no data (target unavailable)"
            elif bi is None:
                why = "no baseline in this run"
            elif bi.unavailable:
                why = f"baseline unavailable: {bi.unavailable}"
            elif c is None or cb is None:
                why = "not measured"
            elif c.rep is None:
                why = f"invalid: {c.invalid_reason}"
            elif cb.rep is None:
                why = f"baseline invalid: {cb.invalid_reason}"
            if why is not None:
                table.add([*row, why, why, why], ["", "", "", "na", "na", "na"])
                continue
            assert c is not None and cb is not None
            d50 = _sub(c.value("latency_p50_ms"), cb.value("latency_p50_ms"))
            d99 = _sub(c.value("latency_p99_ms"), cb.value("latency_p99_ms"))
            ta, tb = c.value("throughput_rps") or 0.0, cb.value("throughput_rps") or 0.0
            ratio = f"{ta / tb:.3f}" if tb > 0 else "—"
            table.add([*row, fmt(d50, "ms"), fmt(d99, "ms"), ratio])
    return table


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


# ---- resources (series.json) -----------------------------------------------------------------
@dataclass
class ServerSeries:
    server: str
    cpu: list[tuple[float, float]]  # (t, cores)
    mem: list[tuple[float, float]]  # (t, bytes)


def resource_series(run: RunData) -> tuple[dict[str, ServerSeries], str]:
    """Per server CPU/memory over time from prometheus/series.json; ``({}, why)`` when absent."""
    if run.series is None:
        return {}, f"not recorded ({run.dir / 'prometheus' / 'series.json'} absent)"
    q = run.series.get("queries", {})
    out: dict[str, ServerSeries] = {}
    missing = []
    for key, attr in ((obs_names.R_SERVER_CPU, "cpu"), (obs_names.R_SERVER_MEM, "mem")):
        entry = q.get(key)
        if not entry or entry.get("status") != "success" or not entry.get("result"):
            why = (entry or {}).get("error") or "no samples"
            missing.append(f"{key}: {why}")
            continue
        for res in entry["result"]:
            server = res.get("metric", {}).get("server", "?")
            ss = out.setdefault(server, ServerSeries(server, [], []))
            pts = [(float(t), float(v)) for t, v in res.get("values", [])]
            getattr(ss, attr).extend(pts)
    for ss in out.values():
        ss.cpu.sort()
        ss.mem.sort()
    note = "; ".join(missing)
    if not out:
        return {}, f"not recorded ({note})" if note else "not recorded"
    return out, (f"partly recorded: {note}" if note else "")


def resource_table(run: RunData) -> tuple[Table, str]:
    series, note = resource_series(run)
    t = Table(["server", "CPU mean (cores)", "CPU max (cores)", "memory max"], [])
    for server in sorted(series):
        ss = series[server]
        cpu = [v for _, v in ss.cpu]
        mem = [v for _, v in ss.mem]
        t.add(
            [
                server,
                fmt(sum(cpu) / len(cpu), "cores") if cpu else "not recorded",
                fmt(max(cpu), "cores") if cpu else "not recorded",
                fmt_bytes(max(mem)) if mem else "not recorded",
            ]
        )
    return t, note


# ---- friction --------------------------------------------------------------------------------
def friction_value(rec: FrictionRecord) -> str:
    if not rec.available:
        return f"unavailable: {rec.reason or 'no reason recorded'}"
    if rec.value is None:
        return "—"
    unit = rec.definition.unit
    if unit == "bytes":
        return fmt_bytes(rec.value)
    if unit == "yes/no":
        return "yes" if rec.value else "no"
    if float(rec.value).is_integer():
        return str(int(rec.value))
    return f"{rec.value:.3f}"


def friction_tables(run: RunData) -> dict[str, Table]:
    latest: dict[tuple[str, str, str], FrictionRecord] = {}
    for r in run.friction:
        if r.metric in FRICTION_METRICS:
            latest[(r.metric, r.placement, r.server)] = r
    rows = sorted({(m, pl) for m, pl, _ in latest}, key=lambda k: (list(FRICTION_METRICS).index(k[0]), k[1]))
    groups: dict[str, Table] = {}
    for metric, placement in rows:
        d = FRICTION_METRICS[metric]
        t = groups.setdefault(
            d.group,
            Table(["measurement", "unit", "better", "TorchServe", "TF Serving", "winner"], []),
        )
        label = metric if placement == "local" else f"{metric} ({placement})"
        recs = [latest.get((metric, placement, s)) for s in SERVERS]
        vals = [friction_value(r) if r is not None else "not measured" for r in recs]
        cls = ["unavail" if (r is None or not r.available) else "" for r in recs]
        winner = ""
        a, b = recs
        if (
            d.better is not Better.neither
            and a is not None
            and b is not None
            and a.available
            and b.available
            and a.value is not None
            and b.value is not None
        ):
            if a.value == b.value:
                winner = "tie"
            else:
                better_a = a.value < b.value if d.better is Better.lower else a.value > b.value
                winner = SERVER_LABEL["torchserve" if better_a else "tfserving"]
        elif d.better is Better.neither:
            winner = "(no direction)"
        else:
            winner = "—"
        t.add([label, d.unit, d.better.value, *vals, winner], ["", "", "", *cls, "win" if winner not in ("", "—", "tie", "(no direction)") else ""])
    return groups


def friction_value_of(run: RunData, server: str, metric: str) -> float | None:
    v = None
    for r in run.friction:
        if r.server == server and r.metric == metric and r.available and r.value is not None:
            v = r.value
    return v


# ---- recommendations -------------------------------------------------------------------------
def slo_levels(run: RunData) -> list[float]:
    levels = set(STANDARD_SLOS_MS)
    exp_slo = run.meta.load.get("slo_p99_ms")
    if isinstance(exp_slo, int | float):
        levels.add(float(exp_slo))
    levels.update(float(s.slo_p99_ms) for s in run.steps if s.slo_p99_ms)
    return sorted(levels)


def _best_under_slo(run: RunData, cs: dict[tuple[str, Param], Cell], infos: list[TargetInfo], server: str, proto: str, slo: float) -> tuple[Cell | None, str]:
    ts = [t for t in infos if t.server == server and t.protocol == proto and not t.native_extra]
    if not ts:
        return None, "no target"
    avail = [t for t in ts if not t.unavailable]
    if not avail:
        return None, "no data (" + ", ".join(t.name for t in ts) + " unavailable)"
    best: Cell | None = None
    any_valid = False
    for t in avail:
        for (name, _), c in cs.items():
            if name != t.name or c.rep is None:
                continue
            any_valid = True
            p99, thr = c.value("latency_p99_ms"), c.value("throughput_rps") or 0.0
            if p99 is None or p99 > slo or c.rep.error_fraction > MAX_ERROR_FRACTION_FOR_SLO:
                continue
            if best is None or thr > (best.value("throughput_rps") or 0.0):
                best = c
    if best is None:
        return None, "no valid step meets it" if any_valid else "no data (no valid step)"
    return best, ""


def _cost(run: RunData, c: Cell) -> str:
    parts = []
    gw = c.rep.generator if c.rep else None
    if gw is not None and gw.server_cpu_fraction is not None:
        budget = f" of {gw.server_cpu_budget:g}" if gw.server_cpu_budget else ""
        parts.append(f"server CPU {gw.server_cpu_fraction:.2f}{budget} cores")
    server = c.rep.server if c.rep else ""
    rss = friction_value_of(run, server, "peak_rss_bytes")
    if rss is None:
        series, _ = resource_series(run)
        mem = [v for _, v in series[server].mem] if server in series else []
        rss = max(mem) if mem else None
        if rss is not None:
            parts.append(f"memory max {fmt_bytes(rss)} (series)")
    else:
        parts.append(f"peak RSS {fmt_bytes(rss)}")
    return ", ".join(parts) if parts else "resource cost not recorded"


def recommendations(run: RunData) -> Table:
    infos = targets(run)
    cs = cells(run)
    protos = [p for p in ("rest", "grpc") if any(t.protocol == p for t in infos)]
    table = Table(["p99 SLO", "protocol", "TorchServe", "TF Serving", "recommendation"], [])
    for slo in slo_levels(run):
        for proto in protos:
            found = [_best_under_slo(run, cs, infos, s, proto, slo) for s in SERVERS]
            texts = []
            for c, why in found:
                if c is None:
                    texts.append(why)
                else:
                    texts.append(
                        f"{fmt(c.value('throughput_rps'), 'req/s')} req/s at p99 {fmt(c.value('latency_p99_ms'), 'ms')} ms "
                        f"({c.target}, {param_label(c.param)}; {_cost(run, c)})"
                    )
            (ca, wa), (cb, wb) = found
            if ca is None and cb is None:
                rec, cls = ("no data" if wa.startswith("no data") or wb.startswith("no data") else "neither meets this SLO"), "na"
            elif ca is None or cb is None:
                other_why = wa if ca is None else wb
                winner = "TorchServe" if ca is not None else "TF Serving"
                if other_why.startswith("no data"):
                    rec, cls = f"no data for comparison: only {winner} measured", "na"
                else:
                    rec, cls = f"{winner} (only one meets it)", "win"
            else:
                v = compare_cells("throughput_rps", ca, cb)
                assert v is not None
                if not v.significant:
                    rec, cls = f"{NOT_SIGNIFICANT} (Δ {fmt_pct(v.rel_diff)} ≤ {fmt_pct(v.threshold)}): choose on friction/cost", "ns"
                else:
                    winner = "TorchServe" if v.better == "a" else "TF Serving"
                    rec, cls = f"{winner} (+{fmt_pct(v.rel_diff)} throughput, > {fmt_pct(v.threshold)})", "win"
            table.add([f"≤ {slo:g} ms", proto, *texts, rec], ["", "", "", "", cls])
    return table


# ---- all steps -------------------------------------------------------------------------------
ALL_STEP_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "error_fraction")


def all_steps(run: RunData) -> Table:
    t = Table(
        ["step", "target", "load", "valid", *(f"{METRIC_LABEL[m]} ({METRICS[m].unit})" for m in ALL_STEP_METRICS), "stop"],
        [],
    )
    for s in run.steps:
        if s.valid:
            nums = [fmt(METRICS[m].value(s), METRICS[m].unit) for m in ALL_STEP_METRICS]
            cls = [""] * len(nums)
            validity = "valid"
        else:
            nums = ["invalid"] * len(ALL_STEP_METRICS)
            cls = ["invalid"] * len(nums)
            validity = f"invalid: {s.invalid_reason or s.error or 'no reason recorded'}"
        t.add([s.step_id, s.target, param_label(param_of(s)), validity, *nums, s.stop_reason], ["", "", "", "invalid" if not s.valid else "", *cls, ""])
    return t
