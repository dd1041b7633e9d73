"""Schemas of the run directory's files (pydantic): ``steps.jsonl``, ``meta.json``, ``targets.jsonl``.

Every record carries ``format_version``; a reader meeting another version refuses it with
:class:`FormatVersionError`, which names the file (and line) and both versions. Bump
``FORMAT_VERSION`` on any change that an old reader would misread (renamed/retyped field);
adding an optional field with a default is not such a change.

Latencies are milliseconds. In open loop they are measured from each request's *scheduled*
send time (so queueing in front of a saturated server is never hidden); ``service_latency_ms``
is measured from the actual send start. Histograms are HdrHistogram (``hdrhistogram`` package)
of microseconds, compressed + base64 (``HdrHistogram.encode()``), so a report can merge
steps or replot percentiles without the raw samples.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1

StopReason = Literal["stable", "time_bound", "request_bound", "deadline", "error"]
"""Why a step's measurement ended.

- ``stable``: the last ``stability.windows`` windows were steady: no trend or spread of
  throughput, p50 or p99 beyond their sampling noise plus ``stability.tolerance``
  (``servecmp/load/engine/stability.py``); for a burn-in step, throughput alone;
- ``time_bound``: ``stability.max_windows`` windows ran without reaching stability;
- ``request_bound``: ``load.max_requests_per_step`` was reached first;
- ``deadline``: the step process overran its hard deadline and was killed by the parent
  (no measurement survives; the result is synthesised by the parent);
- ``error``: the step process failed (exception / crash); ``error`` says why.
"""


class FormatVersionError(ValueError):
    """A record written by another results format version."""

    def __init__(self, where: str, found: object, expected: int = FORMAT_VERSION) -> None:
        super().__init__(
            f"{where}: results format_version {found!r} is not supported "
            f"(this servecmp reads format_version {expected}); re-run the experiment or use "
            f"the servecmp version that wrote it"
        )
        self.where = where
        self.found = found
        self.expected = expected


class _Record(BaseModel):
    # extra="ignore": a newer writer may add optional fields without breaking old readers.
    model_config = ConfigDict(extra="ignore")


class LatencySummary(_Record):
    """Percentiles of one HDR histogram, in milliseconds (None when it holds no samples)."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None


class WindowSummary(_Record):
    """One measurement window (warm-up excluded)."""

    index: int
    duration_s: float
    ok: int
    wrong_answers: int
    transport_errors: int
    throughput_rps: float  # ok responses / s
    p99_ms: float | None  # of ok responses (from scheduled time in open loop)
    p50_ms: float | None
    scheduled: int = 0  # open loop: sends scheduled in this window
    late_sends: int = 0
    generator_cpu: float | None = None  # fraction of one core
    # sampling noise of the window (steadiness judges spreads against it): ok latencies' mean and
    # standard deviation, and the 95 % order-statistic interval of p50 / p99 (None: open end)
    mean_ms: float | None = None
    sd_ms: float | None = None
    p50_ci_ms: tuple[float | None, float | None] | None = None
    p99_ci_ms: tuple[float | None, float | None] | None = None
    # the watched server process tree: CPU (cores) over the window, RSS at its end
    server_cpu: float | None = None
    server_rss_bytes: int | None = None


class BreakdownPart(_Record):
    """One part of a step's mean latency (servecmp/results/breakdown.py)."""

    part: str  # "outside", "queue", "pre_post" or "compute"
    ms: float | None  # mean per request; None: not reported (``why``), never a silent zero
    source: str  # the server metric(s) it is read from
    kind: Literal["mean", "quantile", "derived"] = "mean"  # what the source offers
    why: str | None = None
    note: str = ""  # what the time includes


class Breakdown(_Record):
    """A step's mean latency split by the server's own counters over the reported windows."""

    client_mean_ms: float | None
    client_n: int = 0
    noise_ms: float | None = None  # the self-check's tolerance
    server_total_ms: float | None = None
    total_source: str = ""
    server_requests: float | None = None  # requests the total's counter counted
    means_only: bool = False  # the server reports sums only (no histogram)
    parts: list[BreakdownPart] = Field(default_factory=list)
    flagged: str | None = None  # the self-check failed: what exceeded what
    not_reported: str | None = None  # no breakdown at all: why


class GeneratorWatch(_Record):
    """How busy the load generator itself was (psutil), over the reported windows."""

    pid: int
    cpu_fraction: float  # process CPU seconds / wall seconds (1.0 = one full core)
    cpu_limit: float  # load.generator_cpu_limit
    cpus: list[int] | None = None  # CPU affinity of the generator process
    server_cpu_fraction: float | None = None  # server processes' CPU / wall, in cores
    server_cpu_budget: float | None = None  # cores the server was given (resources.cpus)


class LateSends(_Record):
    """Open loop: a send is late when it starts > ``threshold_ms`` after its scheduled time.

    ``backpressure``: late because every in-flight slot was busy (the server was slow: that
    wait is part of the reported latency, the server's number). ``generator``: late although a
    slot was free (the generator's own scheduling delay: counts against validity).
    """

    threshold_ms: float
    total: int = 0
    backpressure: int = 0
    generator: int = 0


class StepResult(_Record):
    """One finished step: one target under one load-profile parameter. One line of steps.jsonl."""

    format_version: int = FORMAT_VERSION
    run_id: str
    step_id: str
    index: int = 0
    repeat: int = 0  # interleaved round (load.repeats): steps of one round are paired in verdicts
    # what was measured
    target: str  # Target.name, e.g. "torchserve-rest-json"
    server: str
    protocol: str
    encoding: str
    sweep: Literal["closed_loop", "open_loop", "rate_sweep"]  # the experiment's load.profile
    mode: Literal["closed_loop", "open_loop"]  # how this step generated load
    concurrency: int | None = None  # closed loop: users (in-flight requests)
    rate: float | None = None  # open loop: offered arrival rate (req/s)
    arrival: Literal["uniform", "poisson"] | None = None
    max_in_flight: int | None = None
    # timing
    started_at: str  # ISO-8601 UTC
    warmup_s: float
    window_s: float
    measured_s: float = 0.0  # wall seconds of the reported windows
    windows: list[WindowSummary] = Field(default_factory=list)  # every measurement window
    reported_windows: int = 0  # the last N windows the summary is computed over
    stop_reason: StopReason
    # latency (ok responses only) over the reported windows
    latency_ms: LatencySummary = Field(default_factory=LatencySummary)
    service_latency_ms: LatencySummary | None = None  # open loop: from actual send start
    hdr_latency_us: str | None = None  # base64 HdrHistogram, microseconds
    hdr_service_us: str | None = None
    # counts over the reported windows
    requests: int = 0  # completed (ok + wrong + transport errors)
    ok: int = 0
    wrong_answers: int = 0
    transport_errors: dict[str, int] = Field(default_factory=dict)  # by TransportError.kind
    # rates over the reported windows
    throughput_rps: float = 0.0  # ok / s
    achieved_rps: float = 0.0  # completed / s (any outcome)
    offered_rps: float | None = None  # open loop: configured rate
    sent_rps: float | None = None  # open loop: sends actually started / s
    late: LateSends | None = None
    unsent_at_end: int = 0  # open loop: scheduled but never sent when the step stopped
    generator: GeneratorWatch | None = None
    # verdicts
    valid: bool = True
    invalid_reason: str | None = None
    slo_p99_ms: float | None = None  # rate sweep
    slo_pass: bool | None = None
    error: str | None = None
    totals: dict[str, Any] = Field(default_factory=dict)  # all windows incl. unreported ones
    # trust flags (issue 11): a step is comparable only if valid, steady and undisturbed
    steady: bool = True
    unsteady_reason: str | None = None
    disrupted: str | None = None
    client_ready_s: float | None = None
    breakdown: Breakdown | None = None  # where the time goes (issue 22)

    @property
    def comparable(self) -> bool:
        return self.valid and self.steady and self.disrupted is None

    @property
    def transport_error_count(self) -> int:
        return sum(self.transport_errors.values())

    @property
    def error_fraction(self) -> float:
        return (
            (self.wrong_answers + self.transport_error_count) / self.requests
            if self.requests
            else 0.0
        )


class TargetAvailability(_Record):
    """One line of targets.jsonl: could this target be measured, and if not, why."""

    format_version: int = FORMAT_VERSION
    target: str
    available: bool
    reason: str = ""
    address: str | None = None


class BurnInRecord(_Record):
    """One burn-in of one server: load until its throughput settled (or the bound ran out)."""

    server: str
    target: str  # the target whose protocol and encoding drove it
    after: Literal["start", "restart"]
    started_at: str
    concurrency: int
    converged: bool  # throughput stopped changing beyond its sampling noise within max_s
    duration_s: float  # wall seconds of load (its windows)
    windows: int
    window_s: float
    throughput_rps: list[float] = Field(default_factory=list)  # per window
    reason: str | None = None  # why it did not converge


class RunMeta(_Record):
    """meta.json: provenance of one run."""

    format_version: int = FORMAT_VERSION
    run_id: str
    created_at: str
    experiment_name: str
    experiment_digest: str
    versions: dict[str, str | None]  # python, torch, tensorflow, torchserve, locust, grpcio, ...
    host: dict[str, Any]  # cpu_model, logical_cores, physical_cores, platform, memory
    targets: list[str] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)  # encodings per target, batch, seed
    seeds: dict[str, int] = Field(default_factory=dict)
    load: dict[str, Any] = Field(default_factory=dict)  # warm-up, windows, durations, profile
    placement: dict[str, Any] = Field(default_factory=dict)  # role -> CPU list
    fairness: dict[str, Any] = Field(default_factory=dict)  # Experiment.fairness_settings()
    notes: list[str] = Field(default_factory=list)
    # kind runs (issue 10; servecmp.cluster.provenance): per server the images (reference +
    # digest) and the runtime versions the server's container reports; CPU-sharing truth
    servers: dict[str, Any] = Field(default_factory=dict)
    cluster: dict[str, Any] | None = None
    burn_in: list[BurnInRecord] = Field(default_factory=list)  # per server, in run order


def check_version(data: Any, where: str) -> None:
    """Refuse a record of another format version (``where`` names the file / line)."""
    found = data.get("format_version") if isinstance(data, dict) else None
    if found != FORMAT_VERSION:
        raise FormatVersionError(where, found)
