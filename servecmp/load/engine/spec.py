"""StepSpec: everything a step process needs, as one JSON file; address safety; step planning."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servecmp.experiment import Load, LoadProfile, Payload, Protocol, Target

SPEC_VERSION = 1
# Building the clients and getting one correct answer from each (loading a model in-process, a
# first gRPC connect) happens before the warm-up clock; this bounds it.
CLIENT_READY_BOUND_S = 60.0

# A Kubernetes Service DNS name: <svc>.<ns>.svc[.cluster.local], optionally with :port.
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_SERVICE_DNS = re.compile(rf"^{_LABEL}\.{_LABEL}\.svc(\.cluster\.local)?$")


class AddressError(ValueError):
    """The load engine refuses to send load anywhere but this machine (or a cluster Service)."""


def split_host(address: str) -> str:
    """Host part of ``host:port``, ``[v6]:port``, ``http://host:port/``, ``::1``."""
    addr = address.split("://", 1)[-1].split("/", 1)[0].strip()
    if addr.startswith("["):
        return addr[1 : addr.index("]")]
    if addr.count(":") > 1:  # bare IPv6 without port
        return addr
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def check_address(
    address: str | None, *, cluster_mode: bool = False, target: Target | None = None
) -> None:
    """Refuse any target address other than loopback literals 127.0.0.1 / ::1.

    With ``cluster_mode`` (the kind path, an explicit flag) a cluster Service DNS name
    (``svc.ns.svc`` or ``svc.ns.svc.cluster.local``) is accepted too. In-process baselines take
    a model artifact path as ``address`` and are not network targets.
    """
    if target is not None and target.protocol is Protocol.inprocess:
        return
    if not address:
        raise AddressError("no target address given")
    host = split_host(address)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")):
        return
    if cluster_mode and _SERVICE_DNS.match(host.lower()):
        return
    allowed = "127.0.0.1 or ::1" + (
        " or a cluster Service DNS name (svc.ns.svc[.cluster.local])" if cluster_mode else ""
    )
    hint = "" if cluster_mode else " (cluster Service names need the explicit cluster mode flag)"
    raise AddressError(f"refusing to send load to {address!r}: only {allowed} is allowed{hint}")


class StepSpec(BaseModel):
    """One step: one target under one load parameter (concurrency or rate)."""

    model_config = ConfigDict(extra="forbid")

    spec_version: int = SPEC_VERSION
    run_id: str
    step_id: str
    index: int = 0
    repeat: int = Field(default=0, ge=0)  # interleaved round this step belongs to (load.repeats)
    target: Target
    address: str | None
    cluster_mode: bool = False
    sweep: Literal["closed_loop", "open_loop", "rate_sweep"]
    mode: Literal["closed_loop", "open_loop"]
    concurrency: int | None = Field(default=None, ge=1, le=1024)
    rate: float | None = Field(default=None, gt=0)
    load: Load
    model: str = "resnet"
    payload: Payload = Payload()
    seed: int = 1234
    experiment_digest: str | None = None
    payloads_path: str | None = None  # a PayloadSet .npz (or run dir); else built from the model
    client_factory: str | None = None  # "module:function(spec) -> () -> TargetClient"
    client_options: dict[str, object] = Field(default_factory=dict)
    max_in_flight: int = Field(default=64, ge=1, le=10_000)
    cpus: list[int] | None = None  # CPU affinity of the step process
    server_pids: list[int] = Field(default_factory=list)  # watched for "target saturated"
    server_cpu_budget: float | None = None  # cores given to the server (resources.cpus)
    # the server's own metrics page, read at every window's edges for the latency breakdown
    server_metrics_url: str | None = None
    # why the page is not read (e.g. several replicas behind one Service): the step's breakdown
    # then says so rather than being absent
    server_metrics_unread: str | None = None
    slo_p99_ms: float | None = None  # rate sweep: judged per step
    grace_s: float = Field(default=5.0, ge=0)  # startup + drain allowance in the hard deadline
    # a burn-in (servecmp.load.engine.burnin), not a measurement: stops once throughput settled
    burn_in: bool = False

    @model_validator(mode="after")
    def _check(self) -> StepSpec:
        check_address(self.address, cluster_mode=self.cluster_mode, target=self.target)
        if self.server_metrics_url is not None:
            check_address(self.server_metrics_url, cluster_mode=self.cluster_mode)
        if self.mode == "closed_loop" and self.concurrency is None:
            raise ValueError("closed_loop step needs concurrency")
        if self.mode == "open_loop" and self.rate is None:
            raise ValueError("open_loop step needs rate")
        return self

    # ---- time bounds ----------------------------------------------------------------------
    def warmup_bound_s(self) -> float:
        """Warm-up runs at least ``load.warmup_s`` and ends when latency stops falling, at the
        latest after this many seconds (0 when warm-up is off)."""
        w = self.load.warmup_s
        return 0.0 if w <= 0 else w + max(2.0, 2.0 * w)

    def measurement_bound_s(self) -> float:
        """Warm-up bound + every window the stability rule may use (starts once clients are ready)."""
        st = self.load.stability
        return self.warmup_bound_s() + st.max_windows * st.window_s

    def hard_deadline_s(self) -> float:
        """Wall seconds after which the parent kills the step process (never hangs)."""
        return (
            CLIENT_READY_BOUND_S
            + self.measurement_bound_s()
            + self.load.request_timeout_s
            + self.grace_s
            + 15.0
        )

    # ---- io -------------------------------------------------------------------------------
    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.model_dump_json(indent=2))
        return p

    @classmethod
    def read(cls, path: str | Path) -> StepSpec:
        return cls.model_validate_json(Path(path).read_text())

    @property
    def safe_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.step_id)


def plan_steps(load: Load) -> list[tuple[str, float]]:
    """The profile's parameter sequence: [("concurrency", c) ...] or [("rate", r) ...].

    Shared by the engine (one step per entry) and the Locust shapes (one stage per entry).
    A rate sweep's list is an upper bound: it stops at the first rate that breaks the SLO.
    """
    if load.profile is LoadProfile.closed_loop:
        return [("concurrency", float(c)) for c in load.concurrency]
    if load.profile is LoadProfile.open_loop:
        return [("rate", float(load.rate))]
    return [("rate", float(r)) for r in load.rates]


def make_spec(
    *,
    run_id: str,
    index: int,
    target: Target,
    address: str | None,
    load: Load,
    param: tuple[str, float],
    **kw: object,
) -> StepSpec:
    kind, value = param
    sweep = load.profile.value
    extra: dict[str, float | int]
    if kind == "concurrency":
        mode, extra = "closed_loop", {"concurrency": int(value)}
        label = f"c{int(value)}"
    else:
        mode, extra = "open_loop", {"rate": float(value)}
        label = f"r{value:g}"
        if load.profile is LoadProfile.rate_sweep:
            extra["slo_p99_ms"] = load.slo_p99_ms
    step_id = f"{index:03d}-{target.name}-{sweep}-{label}"
    return StepSpec(
        run_id=run_id,
        step_id=step_id,
        index=index,
        target=target,
        address=address,
        sweep=sweep,  # type: ignore[arg-type]
        mode=mode,  # type: ignore[arg-type]
        load=load,
        **extra,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
