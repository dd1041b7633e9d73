"""Numbers the report shows, computed once and rendered to both HTML and Markdown.

Conventions (also written into the report itself, see ``NOISE_RULE`` / ``REPRESENTATIVE_RULE``):

* a *cell* is one target at one load parameter (closed loop: concurrency; open loop: rate);
* only *comparable* steps (valid, steady, undisturbed: ``StepResult.comparable``) give numbers;
  the cell's number is the median over its comparable repeats; a cell without one shows the
  reason, never a number (every step is listed in the "All steps" table);
* with interleaved repeats (``load.repeats``), two cells are compared over the steps of the same
  round, paired: the difference and its 95 % t-interval come from those pairs (:func:`difference`);
  with a single repeat the window-noise rule applies (:func:`compare_values`).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from servecmp.observability import names as obs_names
from servecmp.report.data import RunData
from servecmp.results.friction import FRICTION_METRICS, FrictionMetric, FrictionRecord
from servecmp.results.metrics import METRICS, Better, Metric
from servecmp.results.schema import StepResult
from servecmp.servers import registry

MIN_REL_DIFF = 0.05  # below 5 % nothing is called a difference, however quiet the run
CONFIDENCE = 0.95  # of the paired intervals
STANDARD_SLOS_MS = (25.0, 50.0, 100.0, 250.0)
MAX_ERROR_FRACTION_FOR_SLO = 0.001  # a step "meets" an SLO only with ≤ 0.1 % failed requests
NOT_SIGNIFICANT = "not significant"

NOISE_RULE = (
    "Only comparable steps count: valid (the measurement checked itself), steady (its windows "
    "agree) and undisturbed (the server's processes did not change during the step). "
    "With interleaved repeats (load.repeats ≥ 2: round 1 runs A, B, C …, round 2 again A, B, C …, "
    "so slow drift of the machine hits every target alike), two targets are compared over the "
    "rounds where both have a comparable step: for each round r the log-ratio d_r = ln(b_r / a_r) "
    f"is taken; the difference is exp(mean d) - 1 with its {CONFIDENCE:.0%} Student-t confidence "
    "interval over the rounds (scipy.stats.ttest_1samp), transformed back the same way; the noise "
    "is the standard deviation of the d_r and “resolves ≥ x” is the interval's half-width: the "
    "smallest difference that run could have called. A winner is named only when that interval excludes 0 "
    f"and the difference exceeds {MIN_REL_DIFF:.0%}; otherwise the pair is labelled "
    f"“{NOT_SIGNIFICANT}”. A cell's number is the median over its comparable repeats. "
    "With a single step per target (no repeats) the fallback rule applies: a and b differ only "
    "when |a - b| / ((a + b) / 2) is "
    f"greater than max({MIN_REL_DIFF:.0%}, noise(a), noise(b)), where noise(x) is the largest of "
    "the spread (max - min) / mean over repeated steps and over the step's reported windows of "
    "the window statistic that tracks the metric (window throughput for throughput; window p50 "
    "for p50 and mean; window p99 for p90 … max). One-off friction measurements (cold start, "
    "memory, recovery) have no repeats: their winner is marked “1 measurement each”."
)
REPRESENTATIVE_RULE = (
    "A cell's number is the median over its comparable repeats (valid, steady, undisturbed); "
    "distributions and histograms show the last comparable repeat; every step is listed under "
    "“All steps”. Steps that are not comparable never appear as a server number: their cells say "
    "why (invalid / not steady / disrupted) and the status row gives the reason."
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


# ---- servers: facts come from their adapters (servecmp.servers.registry) ------------------------
@dataclass(frozen=True)
class ServerFacts:
    """What the report needs to know about a server: its display label and the in-process
    baseline target its overhead is measured against. ``registered`` is False for a server found
    in stored results that this installation's registry does not know (a report rebuilt from an
    older or newer run): it is then shown under its stored name, without a baseline."""

    name: str
    label: str
    baseline: str | None
    registered: bool
    inprocess: bool = False


def server_facts(name: str) -> ServerFacts:
    try:
        adapter = registry.get(name)
    except (KeyError, ImportError, AttributeError):  # not registered, or its package absent/incomplete
        return ServerFacts(name, name, None, registered=False)
    return ServerFacts(name, adapter.label, adapter.baseline, registered=True, inprocess=adapter.is_inprocess)


def server_label(name: str) -> str:
    return server_facts(name).label


def baseline_of(server: str) -> str | None:
    """Target name of the in-process baseline ``server`` is compared against (None: none known)."""
    return server_facts(server).baseline


def _registry_order(name: str) -> tuple[int, str]:
    order = registry.names()
    return (order.index(name), "") if name in order else (len(order), name)


def servers(run: RunData) -> list[str]:
    """The model servers (not in-process baselines) of a run, in registry order, then any server
    the registry does not know, by name: one report column each."""
    infos = targets(run)
    baselines = {t.server for t in infos if t.baseline}
    found = {t.server for t in infos if not t.baseline}
    found |= {r.server for r in run.friction if r.server not in baselines and not server_facts(r.server).inprocess}
    return sorted(found, key=_registry_order)


def server_pairs(names: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair, in column order: (a, b) with a before b."""
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


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


# ---- notes: each reason for missing data is written once ---------------------------------------
def unavailable_reasons(run: RunData) -> list[str]:
    """Distinct reasons why a target or a friction measurement is unavailable, in report order."""
    out: list[str] = []
    for t in targets(run):
        if t.unavailable and t.unavailable not in out:
            out.append(t.unavailable)
    for r in run.friction:
        if not r.available:
            why = r.reason or "no reason recorded"
            if why not in out:
                out.append(why)
    return out


def note_ref(run: RunData, reason: str | None) -> str:
    """``unavailable (note N)``: the cell points at the note that gives the reason once."""
    reasons = unavailable_reasons(run)
    why = reason or "no reason recorded"
    return f"unavailable (note {reasons.index(why) + 1})" if why in reasons else "unavailable"


def notes_table(run: RunData) -> Table:
    t = Table(["note", "reason"], [])
    for i, why in enumerate(unavailable_reasons(run), start=1):
        who = [x.name for x in targets(run) if x.unavailable == why]
        fr = sorted({f"{server_label(r.server)} {FRICTION_LABEL.get(r.metric, r.metric).lower()}"
                     for r in run.friction if not r.available and (r.reason or "no reason recorded") == why})
        subject = ", ".join(who) if who else ""
        if fr and not who:
            subject = "; ".join(fr[:4]) + (f" and {len(fr) - 4} more" if len(fr) > 4 else "")
        t.add([str(i), f"{subject} unavailable: {why}" if subject else why])
    return t


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
    # paired over interleaved repeats: b / a - 1, its confidence interval, the pairs, the noise
    change: float | None = None
    interval: tuple[float, float] | None = None
    n_pairs: int = 0
    noise: float | None = None  # standard deviation of the paired log-ratios
    resolution: float | None = None  # smallest difference these pairs could call (half-width, >= 5 %)

    @property
    def label(self) -> str:
        return "significant" if self.significant else NOT_SIGNIFICANT

    @property
    def paired(self) -> bool:
        return self.interval is not None

    def describe(self) -> str:
        """The difference with its interval (paired) or threshold (fallback rule)."""
        if self.interval is not None and self.change is not None:
            lo, hi = self.interval
            return (f"{_signed_pct(self.change)} [{_signed_pct(lo)}, {_signed_pct(hi)}] "
                    f"({self.n_pairs} paired repeats, noise {fmt_pct(self.noise or 0.0)}, "
                    f"resolves ≥ {fmt_pct(self.resolution or MIN_REL_DIFF)})")
        return f"{fmt_pct(self.rel_diff)} (threshold {fmt_pct(self.threshold)}; 1 repeat, window noise)"


def _signed_pct(x: float) -> str:
    return f"{'+' if x >= 0 else '-'}{abs(x) * 100:.1f} %"


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
    """Unpaired rule (single repeats, or two different runs): window / repeat noise thresholds."""
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    return compare_values(METRICS[metric], va, vb, noise(ca, metric), noise(cb, metric))


def paired_verdict(metric: Metric, pairs: list[tuple[float, float]], a: float, b: float) -> Verdict:
    """b vs a over paired repeats: exp(mean ln(b/a)) - 1 with a Student-t interval."""
    d = np.log(np.array([y / x for x, y in pairs], dtype=float))
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd < 1e-12:  # identical ratios in every round: the interval is the point
        lo = hi = mean
    else:
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(CONFIDENCE)
        lo, hi = float(ci.low), float(ci.high)
    resolution = max(MIN_REL_DIFF, math.expm1((hi - lo) / 2))
    change = math.expm1(mean)
    sig = (lo > 0 or hi < 0) and abs(change) > MIN_REL_DIFF
    better = None
    if sig and metric.better is not Better.neither:
        better = "b" if metric.is_better(1.0 + change, 1.0) else "a"
    return Verdict(a, b, abs(change), MIN_REL_DIFF, sig, better, change=change,
                   interval=(math.expm1(lo), math.expm1(hi)), n_pairs=len(pairs), noise=sd,
                   resolution=resolution)


def difference(metric: str, ca: Cell, cb: Cell) -> Verdict | None:
    """b (``cb``) vs a (``ca``): paired over interleaved rounds when both have >= 2 rounds in
    common, else the unpaired fallback rule. None when either side has no comparable step."""
    va, vb = ca.value(metric), cb.value(metric)
    if va is None or vb is None:
        return None
    ra, rb = ca.by_repeat(metric), cb.by_repeat(metric)
    pairs = [(ra[r], rb[r]) for r in sorted(set(ra) & set(rb)) if ra[r] > 0 and rb[r] > 0]
    if len(pairs) >= 2:
        return paired_verdict(METRICS[metric], pairs, va, vb)
    return compare_cells(metric, ca, cb)


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
    v = difference(metric, c2, c1)  # the best (b) vs the runner-up (a)
    assert v is not None
    if not v.significant:
        return f"{t1.name} ≈ {t2.name}: {NOT_SIGNIFICANT} ({v.describe()})", "ns"
    return f"{t1.name} (vs {t2.name}: {v.describe()})", "win"


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
            return (c.invalid_reason or "not comparable").split(":")[0], "invalid"
        return fn(c), ""

    # status first: the reader sees at once which columns hold numbers
    row, cls = ["step status", "", ""], ["", "", ""]
    for t in infos:
        c = cs.get((t.name, param))
        if t.unavailable:
            row.append(note_ref(run, t.unavailable))
            cls.append("unavail")
        elif c is None:
            row.append("not measured")
            cls.append("na")
        elif c.rep is None:
            row.append(c.invalid_reason or "not comparable")
            cls.append("invalid")
        else:
            n_out = len(c.steps) - len(c.valid_steps)
            extra = f" ({len(c.steps)} steps, {n_out} not comparable)" if n_out else ""
            row.append(f"comparable{extra}")
            cls.append("")
    table.add([*row, ""], [*cls, ""])

    def add_row(label: str, unit: str, better: str, fn: Callable[[Cell], str], best: tuple[str, str] = ("", "")) -> None:
        """One metric row: a cell per target (or why it has no number), then the best column."""
        texts, classes = zip(*(cell_text(t, fn) for t in infos), strict=True) if infos else ((), ())
        table.add([label, unit, better, *texts, best[0]], ["", "", "", *classes, best[1]])

    add_row("comparable repeats", "steps", "", lambda c: str(len(c.valid_steps)))
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
    """Every pair of servers, per load and protocol, on their common-encoding targets: b vs a
    with the noise rule (paired interval over interleaved repeats, else the fallback)."""
    infos = targets(run)
    cs = cells(run)
    names = servers(run)
    table = Table(["load", "protocol", "metric", "unit", "a", "b", "a value", "b value", "difference", "verdict"], [])

    def side(t: TargetInfo | None, p: Param, metric: str) -> tuple[str, Cell | None]:
        if t is None:
            return "no target", None
        if t.unavailable:
            return f"no data ({t.name} unavailable)", None
        c = cs.get((t.name, p))
        if c is None:
            return "not measured", None
        if c.rep is None:
            return c.invalid_reason or "not comparable", None
        return fmt(c.value(metric), METRICS[metric].unit), c

    for p in params(run):
        for proto in ("rest", "grpc"):
            mains = {x: _main_target(infos, x, proto) for x in names}
            for a, b in server_pairs(names):
                ta, tb = mains[a], mains[b]
                if ta is None and tb is None:
                    continue
                la, lb = server_label(a), server_label(b)
                for name in HEAD_METRICS:
                    m = METRICS[name]
                    row = [param_label(p), proto, METRIC_LABEL[name], m.unit, la, lb]
                    (va, ca), (vb, cb) = side(ta, p, name), side(tb, p, name)
                    if ca is None or cb is None:
                        table.add([*row, va, vb, "—", "no data"], [*([""] * 8), "", "na"])
                        continue
                    v = difference(name, ca, cb)
                    assert v is not None
                    diff = f"{lb} vs {la}: {v.describe()}" if v.paired else v.describe()
                    if not v.significant:
                        verdict, vc = NOT_SIGNIFICANT, "ns"
                    else:
                        verdict, vc = f"{la if v.better == 'a' else lb} better", "win"
                    table.add([*row, va, vb, diff, verdict], [*([""] * 8), "", vc])
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
            base = baseline_of(t.server)
            if t.baseline or base is None:
                continue
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
                why = c.invalid_reason or "not comparable"
            elif cb.rep is None:
                why = f"baseline {cb.invalid_reason or 'not comparable'}"
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
FRICTION_LABEL: dict[str, str] = {
    "packaging_steps": "Packaging commands",
    "packaging_s": "Packaging time",
    "artifact_bytes": "Model artifact size",
    "image_bytes": "Container image size",
    "cold_start_ready_s": "Cold start to ready",
    "cold_start_first_inference_s": "Cold start to first correct answer",
    "install_ready_s": "Helm install to pod Ready",
    "idle_rss_bytes": "Idle memory (RSS)",
    "peak_rss_bytes": "Peak memory under load (RSS)",
    "idle_cpu_cores": "Idle CPU",
    "config_files": "Configuration files written",
    "config_lines": "Configuration lines",
    "config_knobs_changed": "Settings changed from defaults",
    "metric_families": "Native Prometheus metric families",
    "server_latency_quantiles": "Server-side latency histogram",
    "update_failed_requests": "Failed requests during a model update",
    "update_s": "Model update to first v2 answer",
    "recovery_s": "Recovery after a kill under load",
    "recovery_lost_requests": "Requests lost while down",
    "bad_payload_clear_errors": "Bad payloads answered with a clear 4xx",
}


def friction_unit(metric: str) -> str:
    unit = FRICTION_METRICS[metric].unit
    return "MiB" if unit == "bytes" else unit


def friction_value(rec: FrictionRecord, run: RunData | None = None) -> str:
    if not rec.available:
        return note_ref(run, rec.reason) if run is not None else f"unavailable: {rec.reason or 'no reason recorded'}"
    if rec.value is None:
        return "—"
    unit = rec.definition.unit
    if unit == "bytes":
        return f"{rec.value / 2**20:.1f}"
    if unit == "yes/no":
        return "yes" if rec.value else "no"
    if float(rec.value).is_integer():
        return str(int(rec.value))
    return f"{rec.value:.3f}"


def _friction_winner(d: FrictionMetric, recs: list[FrictionRecord | None], names: list[str]) -> str:
    """The best of N one-off measurements ("tie" when several share the best value)."""
    if d.better is Better.neither:
        return "(no direction)"
    have = [(n, r.value) for n, r in zip(names, recs, strict=True)
            if r is not None and r.available and r.value is not None]
    if len(have) < 2:
        return "—"
    pick = min if d.better is Better.lower else max
    best = pick(v for _, v in have)
    winners = [n for n, v in have if v == best]
    return "tie" if len(winners) > 1 else server_label(winners[0])


def friction_tables(run: RunData) -> dict[str, Table]:
    latest: dict[tuple[str, str, str], FrictionRecord] = {}
    for r in run.friction:
        if r.metric in FRICTION_METRICS:
            latest[(r.metric, r.placement, r.server)] = r
    rows = sorted({(m, pl) for m, pl, _ in latest}, key=lambda k: (list(FRICTION_METRICS).index(k[0]), k[1]))
    names = servers(run)
    groups: dict[str, Table] = {}
    for metric, placement in rows:
        d = FRICTION_METRICS[metric]
        t = groups.setdefault(
            d.group,
            Table(["measurement", "unit", "better", *(server_label(x) for x in names), "winner"], []),
        )
        label = FRICTION_LABEL.get(metric, metric) + ("" if placement == "local" else f" ({placement})")
        recs = [latest.get((metric, placement, x)) for x in names]
        vals = [friction_value(r, run) if r is not None else "not measured" for r in recs]
        cls = ["unavail" if (r is None or not r.available) else "" for r in recs]
        winner = _friction_winner(d, recs, names)
        t.add([label, friction_unit(metric), d.better.value, *vals, winner], ["", "", "", *cls, "win" if winner not in ("", "—", "tie", "(no direction)") else ""])
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
        return None, "no comparable step meets it" if any_valid else "no data (no comparable step)"
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


def _ranked_verdict(metric: str, found: list[tuple[str, Cell]]) -> tuple[str, str, str, Verdict]:
    """The best server by ``metric`` and whether it beats the runner-up beyond noise:
    (best, runner-up, css class, verdict of best (b) vs runner-up (a))."""
    m = METRICS[metric]
    ranked = sorted(found, key=lambda x: x[1].value(metric) or 0.0, reverse=m.better is not Better.lower)
    (s1, c1), (s2, c2) = ranked[0], ranked[1]
    v = difference(metric, c2, c1)
    assert v is not None
    return s1, s2, ("win" if v.significant else "ns"), v


def recommendations(run: RunData) -> Table:
    """Per SLO and protocol: each server's best throughput under it, then the recommendation over
    all N servers: the best one when it beats the runner-up beyond noise (the pairwise rule of
    :func:`difference`), else "not significant"."""
    infos = targets(run)
    cs = cells(run)
    names = servers(run)
    protos = [p for p in ("rest", "grpc") if any(t.protocol == p for t in infos)]
    table = Table(["p99 SLO", "protocol", *(server_label(x) for x in names), "recommendation"], [])
    for slo in slo_levels(run):
        for proto in protos:
            found = [_best_under_slo(run, cs, infos, x, proto, slo) for x in names]
            texts = []
            for c, why in found:
                if c is None:
                    texts.append(why)
                else:
                    texts.append(
                        f"{fmt(c.value('throughput_rps'), 'req/s')} req/s at p99 {fmt(c.value('latency_p99_ms'), 'ms')} ms "
                        f"({c.target}, {param_label(c.param)}; {_cost(run, c)})"
                    )
            meets = [(x, c) for x, (c, _) in zip(names, found, strict=True) if c is not None]
            whys = [why for c, why in found if c is None]
            if not meets:
                missing = [server_label(x) for x, (_, w) in zip(names, found, strict=True) if w.startswith("no data")]
                if not names or len(missing) == len(names) or (missing and len(names) == 2):
                    rec = "no data"
                elif missing:
                    rec = f"none of the measured servers meets this SLO (no data for {', '.join(missing)})"
                else:
                    rec = "neither meets this SLO" if len(names) == 2 else "none meets this SLO"
                cls = "na"
            elif len(meets) == 1:
                winner = server_label(meets[0][0])
                if all(w.startswith("no data") for w in whys):
                    rec, cls = f"no data for comparison: only {winner} measured", "na"
                else:
                    rec, cls = f"{winner} (only one meets it)", "win"
            else:
                best, runner, cls, v = _ranked_verdict("throughput_rps", meets)
                pair = f"{server_label(best)} vs {server_label(runner)} throughput {v.describe()}"
                if not v.significant:
                    rec = f"{NOT_SIGNIFICANT} ({pair}): choose on friction/cost"
                else:
                    rec = f"{server_label(best)} ({pair})"
            table.add([f"≤ {slo:g} ms", proto, *texts, rec], ["", "", *([""] * len(names)), cls])
    return table


# ---- all steps -------------------------------------------------------------------------------
ALL_STEP_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "error_fraction")


def all_steps(run: RunData) -> Table:
    t = Table(
        ["step", "target", "load", "round", "status", *(f"{METRIC_LABEL[m]} ({METRICS[m].unit})" for m in ALL_STEP_METRICS), "stop"],
        [],
    )
    for s in run.steps:
        why = not_comparable_reason(s)
        if s.valid:  # a valid but unsteady / disrupted step keeps its numbers here, labelled
            nums = [fmt(METRICS[m].value(s), METRICS[m].unit) for m in ALL_STEP_METRICS]
            cls = [""] * len(nums)
        else:
            nums = ["invalid"] * len(ALL_STEP_METRICS)
            cls = ["invalid"] * len(nums)
        status = why or "comparable"
        t.add([s.step_id, s.target, param_label(param_of(s)), str(s.repeat + 1), status, *nums, s.stop_reason],
              ["", "", "", "", "invalid" if why else "", *cls, ""])
    return t


# ---- the answer first: summary per protocol --------------------------------------------------
SUMMARY_FRICTION = ("cold_start_ready_s", "idle_rss_bytes", "recovery_s", "config_knobs_changed")


def summary_slo(run: RunData) -> float:
    slo = run.meta.load.get("slo_p99_ms")
    return float(slo) if isinstance(slo, int | float) else 100.0


def _verdict_text(v: Verdict | None, a_label: str, b_label: str) -> tuple[str, str]:
    if v is None:
        return "no data", "na"
    if not v.significant:
        return f"{NOT_SIGNIFICANT}: {v.describe()}", "ns"
    winner = a_label if v.better == "a" else b_label
    return f"{winner} better: {b_label} vs {a_label} {v.describe()}", "win"


def _friction_pair(d: FrictionMetric, a: FrictionRecord | None, b: FrictionRecord | None, la: str, lb: str) -> tuple[str, str]:
    if a is None or b is None or not a.available or not b.available or a.value is None or b.value is None:
        return "no data", "na"
    if a.value == b.value:
        return "tie", "ns"
    if d.better is Better.neither:
        return "(no direction)", "ns"
    better_a = a.value < b.value if d.better is Better.lower else a.value > b.value
    return f"{la if better_a else lb} better (1 measurement each)", "win"


def summary_tables(run: RunData) -> list[tuple[str, Table]]:
    """Per protocol: each server's headline numbers (a column each) and a verdict for every pair
    of servers (a column each: "A vs B"), one line per question."""
    infos = targets(run)
    cs = cells(run)
    ps = params(run)
    slo = summary_slo(run)
    names = servers(run)
    pairs = server_pairs(names)
    labels = [server_label(x) for x in names]
    idx = {x: i for i, x in enumerate(names)}
    out: list[tuple[str, Table]] = []
    for proto in ("rest", "grpc"):
        mains = [_main_target(infos, srv, proto) for srv in names]
        if all(m is None for m in mains):
            continue
        t = Table(["question", "unit", *labels, *(f"{server_label(a)} vs {server_label(b)}" for a, b in pairs)], [],
                  caption=f"{proto.upper()}: " + " vs ".join(m.name if m else f"no {server_label(srv)} target"
                                                               for m, srv in zip(mains, names, strict=True)))
        blank = ["", ""] + [""] * len(names)

        def side(m: TargetInfo | None, p: Param | None = None) -> tuple[Cell | None, str]:
            if m is None:
                return None, "no target"
            if m.unavailable:
                return None, note_ref(run, m.unavailable)
            if p is None:
                return None, ""
            c = cs.get((m.name, p))
            if c is None:
                return None, "not measured"
            if c.rep is None:
                return None, c.invalid_reason or "not comparable"
            return c, ""

        def verdicts(metric: str, got: list[tuple[Cell | None, str]]) -> tuple[list[str], list[str]]:
            texts, classes = [], []
            for a, b in pairs:
                ca, cb = got[idx[a]][0], got[idx[b]][0]
                vt, vc = _verdict_text(difference(metric, ca, cb) if ca and cb else None,
                                       server_label(a), server_label(b))
                texts.append(vt)
                classes.append(vc)
            return texts, classes

        # best throughput under the SLO
        best: list[tuple[Cell | None, str]] = []
        for srv, m in zip(names, mains, strict=True):
            _, why = side(m)
            if why:
                best.append((None, why))
                continue
            c, why = _best_under_slo(run, cs, infos, srv, proto, slo)
            best.append((c, why))
        texts = [f"{fmt(c.value('throughput_rps'), 'req/s')} ({param_label(c.param)})" if c else why for c, why in best]
        vts, vcs = verdicts("throughput_rps", best)
        t.add([f"Best throughput with p99 ≤ {slo:g} ms", "req/s", *texts, *vts], [*blank, *vcs])
        # latency at the lowest load
        if ps:
            low = ps[0]
            sides = [side(m, low) for m in mains]
            for metric, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")):
                texts = [fmt(c.value(metric), "ms") if c else why for c, why in sides]
                vts, vcs = verdicts(metric, sides)
                t.add([f"{label} latency at the lowest load ({param_label(low)})", "ms", *texts, *vts], [*blank, *vcs])
        # one-off friction measurements
        for metric in SUMMARY_FRICTION:
            d = FRICTION_METRICS[metric]
            recs = [_last_friction(run, srv, metric) for srv in names]
            texts = [friction_value(r, run) if r is not None else "not measured" for r in recs]
            pv = [_friction_pair(d, recs[idx[a]], recs[idx[b]], server_label(a), server_label(b)) for a, b in pairs]
            t.add([FRICTION_LABEL[metric], friction_unit(metric), *texts, *(x for x, _ in pv)], [*blank, *(c for _, c in pv)])
        out.append((proto, t))
    return out


def _last_friction(run: RunData, server: str, metric: str) -> FrictionRecord | None:
    found = None
    for r in run.friction:
        if r.server == server and r.metric == metric and r.placement == "local":
            found = r
    return found


DIFF_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p99_ms")


def compared_pairs(run: RunData) -> list[tuple[TargetInfo, TargetInfo]]:
    """The pairs a reader decides between: same protocol across servers, protocols and encodings
    within a server, each server target against its framework's in-process baseline."""
    infos = [t for t in targets(run) if not t.unavailable]
    by_name = {t.name: t for t in infos}
    pairs: list[tuple[TargetInfo, TargetInfo]] = []
    servers = [t for t in infos if not t.baseline]
    for i, a in enumerate(servers):
        for b in servers[i + 1:]:
            if a.server == b.server or (a.protocol == b.protocol and not a.native_extra and not b.native_extra):
                pairs.append((a, b))
    for a in servers:
        base = by_name.get(baseline_of(a.server) or "")
        if base is not None:
            pairs.append((base, a))
    return pairs


def differences(run: RunData) -> Table:
    """Every compared pair at every load: b vs a with its interval (paired over rounds)."""
    cs = cells(run)
    t = Table(["load", "a", "b", "metric", "unit", "a", "b", "b vs a", "verdict"], [])
    for p in params(run):
        for a, b in compared_pairs(run):
            ca, cb = cs.get((a.name, p)), cs.get((b.name, p))
            for metric in DIFF_METRICS:
                m = METRICS[metric]
                va = fmt(ca.value(metric), m.unit) if ca and ca.rep else (ca.invalid_reason if ca else "not measured")
                vb = fmt(cb.value(metric), m.unit) if cb and cb.rep else (cb.invalid_reason if cb else "not measured")
                v = difference(metric, ca, cb) if ca and cb and ca.rep and cb.rep else None
                if v is None:
                    dtxt, verdict, cls = "—", "no data", "na"
                elif not v.significant:
                    dtxt, verdict, cls = v.describe(), NOT_SIGNIFICANT, "ns"
                else:
                    dtxt, verdict, cls = v.describe(), f"{(b if v.better == 'b' else a).name} better", "win"
                t.add([param_label(p), a.label, b.label, METRIC_LABEL[metric], m.unit, va or "", vb or "", dtxt, verdict],
                      ["", "", "", "", "", "", "", "", cls])
    return t
