"""The seam every model server plugs into: one ``ServerAdapter`` per server, listed in registry.py.

Everything server-specific lives behind an adapter (its package ``servecmp/servers/<name>/``): the knobs
its config files get from the experiment, how it starts on this machine, the protocols and
encodings it speaks (and which client speaks each), its ports, paths and Service name (the chart
gets these through generated values, never its own copy), its metric names and PromQL, the
in-process baseline it is compared against, its configuration search space (``servecmp tune``)
and its fairness mapping (the README table). Every other module iterates over the registry.

Adding a server: docs/ARCHITECTURE.md "Adding a server" and tests/test_server_adapters.py, which
fails when a registered adapter lacks a piece.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:  # heavy or circular at import time; adapters import lazily
    from servecmp.configgen.placement import Placement
    from servecmp.configgen.surface import Surface
    from servecmp.experiment import Encoding, Experiment, Protocol, Target
    from servecmp.load.clients.base import TargetClient
    from servecmp.load.payloads import PayloadSet
    from servecmp.models.card import ModelCard
    from servecmp.models.export import Artifacts, PackagingRecord
    from servecmp.run.server import LocalServer


# ---- wire facts: written once here, reaching Helm through generated values --------------------
@dataclass(frozen=True)
class Port:
    """One listening port. ``name`` is the Kubernetes port name (<= 15 chars, IANA style).

    Two ports with the same ``number`` are one socket seen in two roles (TF Serving serves its
    metrics on the REST port): a local placement gives them one free port, not two."""

    name: str
    number: int  # the server's default / in-cluster port; local runs pick free ports instead
    role: Literal["rest", "grpc", "metrics", "management", "grpc-management"]
    app_protocol: Literal["http", "grpc"] = "http"


@dataclass(frozen=True)
class Wire:
    """Where a server answers inside its pod (the local runtime remaps ports, never paths)."""

    service: str  # Service, container and scrape job name (also cAdvisor's container label)
    ports: tuple[Port, ...]
    metrics_path: str  # served on the port with role "metrics"
    # HTTP GET on the REST port that answers 200 only once the model can serve ("{model}" filled).
    ready_path: str
    # In-container paths the server reads (model root, config dir), by role.
    paths: dict[str, str] = field(default_factory=dict)

    def port(self, role: str) -> Port:
        for p in self.ports:
            if p.role == role:
                return p
        raise KeyError(f"{self.service}: no port with role {role!r}")

    def values(self) -> dict[str, Any]:
        """The ``wire`` block of the server's subchart values (generated, never hand-written)."""
        return {
            "service": self.service,
            "ports": {
                p.name: {"port": p.number, "role": p.role, "appProtocol": p.app_protocol}
                for p in self.ports
            },
            "metricsPort": self.port("metrics").name,
            "metricsPath": self.metrics_path,
            "readyPath": self.ready_path,
            "paths": dict(self.paths),
        }


# ---- protocols: which encodings, which client -------------------------------------------------
@dataclass(frozen=True)
class ProtocolSpec:
    protocol: Protocol
    encodings: tuple[Encoding, ...]  # the first is the fair default; the rest are labelled extras
    client: str  # "module:Class" of a TargetClient, imported only when a client is built

    def client_class(self) -> type[TargetClient]:
        module, _, cls = self.client.partition(":")
        return getattr(importlib.import_module(module), cls)


# ---- metrics the server reports about itself --------------------------------------------------
BREAKDOWN_PARTS = ("queue", "pre_post", "compute")  # what the server's own total splits into


@dataclass(frozen=True)
class Series:
    """One exposed sample read at a step window's start and end (a cumulative counter, or a
    histogram's ``_sum``/``_count``): ``name`` as exposed, ``match`` (label, regex) pairs every
    summed sample's labels must fully match (absent label: "")."""

    name: str
    match: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PartSource:
    """Where one part of the per-request time comes from: over a window, (delta of ``time``'s
    samples - delta of ``minus``'s) / delta of ``count`` * ``scale_s`` seconds per request.

    ``kind``: "mean" when the server keeps sums only, "quantile" when the series is a histogram
    (quantiles exist too; the breakdown adds means, which quantiles do not). ``protocols``: the
    only protocols whose requests the series count (empty: all). ``metric`` names the source in
    the report; ``note`` says what the time includes."""

    metric: str
    time: tuple[Series, ...] = ()
    count: Series | None = None
    minus: tuple[Series, ...] = ()
    scale_s: float = 1.0
    kind: Literal["mean", "quantile"] = "mean"
    protocols: tuple[str, ...] = ()
    note: str = ""
    # other parts whose means this part's series include (subtracted when reported)
    minus_parts: tuple[str, ...] = ()
    # the server's total minus its other reported parts (no series of its own)
    remainder: bool = False
    # the in-process baseline: the client's own clock times the call (no server, no series)
    client_clock: bool = False

    def series(self) -> tuple[Series, ...]:
        return (*self.time, *self.minus, *((self.count,) if self.count else ()))


# An in-process baseline's one part: the call itself is the model compute.
CLIENT_CLOCK = PartSource(
    metric="the in-process call, timed by the client",
    client_clock=True,
    note="no server: the whole call is the model's compute (and the tensor conversion)",
)


@dataclass(frozen=True)
class ServerMetrics:
    """Native metric names and the PromQL (over 1m rates) that reads them. ``{sel}`` in a query is
    replaced by a label selector body (e.g. ``namespace="servecmp"``); queries return one series
    per ``namespace, model_name``."""

    names: dict[str, str]  # role -> metric name, e.g. {"requests": "ts_inference_requests_total"}
    requests_rate: str  # answered requests per second
    latency_mean_s: str | None  # mean server-side latency, seconds
    latency_quantile_s: str | None = None  # with "{q}" (0.5, 0.99): None when only means exist
    queue_mean_s: str | None = None
    error_ratio: str | None = None
    note: str = ""  # what the numbers include (queueing, REST and gRPC together, ...)
    # Further series worth recording and plotting: key -> PromQL (same ``{sel}`` rule), recorded
    # as ``servecmp:server_<key>_rate1m`` with a ``server`` label, e.g. {"runtime_seconds:p99": ...}.
    # Keys are lower-case ``[a-z0-9_:]``; a key holding "seconds" is in seconds.
    extra: dict[str, str] = field(default_factory=dict)
    # Latency breakdown (servecmp/results/breakdown.py): "total" (the server's own time per
    # request) and the parts of BREAKDOWN_PARTS it reports, each read as window deltas of its own
    # counters. A part left out is "not reported by <server>", never zero.
    breakdown: dict[str, PartSource] = field(default_factory=dict)
    # Parts that differ per protocol (protocol -> part -> source), replacing ``breakdown``'s for
    # that protocol's steps: a server timing each protocol in its own series (Ray's proxies).
    breakdown_by_protocol: dict[str, dict[str, PartSource]] = field(default_factory=dict)


# ---- tuning (servecmp tune) and fairness (README table) ---------------------------------------
@dataclass(frozen=True)
class Knob:
    """One searchable setting. ``field`` is the experiment field it sets (dotted, e.g.
    ``tuning.workers``); ``values`` the candidates in order; ``source`` cites the server's
    documentation naming it as performance-relevant. ``protocols``: the only protocols whose
    serving the knob changes as measured (empty: all); ``servecmp tune`` holds a knob at the
    experiment's value when the server also has targets on another protocol, so nothing tuned
    on one protocol reaches another unseen. Logging (``tuning.logging``) is a knob like any other:
    a server declares it where its own log level costs request time."""

    field: str
    values: tuple[Any, ...]
    source: str
    protocols: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchSpace:
    knobs: tuple[Knob, ...]
    # Every experiment field this server's config reads, so a knob outside it is refused by name
    # (servecmp tune); empty: the knobs' own fields.
    known: tuple[str, ...] = ()

    def known_fields(self) -> tuple[str, ...]:
        return self.known or tuple(k.field for k in self.knobs)


@dataclass(frozen=True)
class FairnessRow:
    """One README fairness-table row: experiment setting -> this server's own knob and rule."""

    setting: str  # experiment field, e.g. "tuning.workers"
    knob: str  # e.g. "default_workers_per_model"
    rule: str  # e.g. "= tuning.workers"


@dataclass(frozen=True)
class RenderedConfig:
    files: dict[str, str]  # file name -> content (written to <config dir>/<server>/)
    env: dict[str, str] = field(default_factory=dict)  # process / container environment


# ---- model artifacts (servecmp/models/export.py) ----------------------------------------------
# What a server loads. export.py writes the source artifacts once (torchscript, onnx, savedmodel)
# from the model's one source; an adapter needing more (torchserve_mar) packages it itself.
ArtifactKind = Literal["torchserve_mar", "torchscript", "onnx", "savedmodel"]
SourceKind = Literal["torchscript", "onnx", "factory"]  # ModelCard.source.kind


# ---- the adapter ------------------------------------------------------------------------------
class ServerAdapter(ABC):
    """A model server (or an in-process baseline) as the rest of servecmp sees it."""

    name: ClassVar[str]  # registry key = Target.server value = label value ("torchserve")
    label: ClassVar[str]  # display name ("TorchServe 0.12")
    # name in verdict cells when ``label`` carries version/flavour ("KServe"); "": the label
    short_label: ClassVar[str] = ""
    framework: ClassVar[Literal["pytorch", "tensorflow"]]  # which exported artifact it serves
    protocols: ClassVar[tuple[ProtocolSpec, ...]]
    # Target name of the in-process baseline its overhead is measured against (None: a baseline).
    baseline: ClassVar[str | None] = None
    chart: ClassVar[str | None] = None  # helm/servecmp/charts/<chart>; None: no cluster path
    wire: ClassVar[Wire | None] = None  # None only for in-process baselines
    metrics: ClassVar[ServerMetrics | None] = None
    search_space: ClassVar[SearchSpace | None] = None
    # Whether the server batches requests itself; False: an experiment with batching on is
    # refused for it (servecmp/experiment.py).
    server_batching: ClassVar[bool] = True
    fairness: ClassVar[tuple[FairnessRow, ...]] = ()
    # The artifact it serves; None: the framework's (TorchScript for pytorch, SavedModel for
    # tensorflow), so an adapter serving the exported TorchScript needs no declaration.
    artifact: ClassVar[ArtifactKind | None] = None
    # Whether it serves models with several (or integer) inputs over the multi-input encodings
    # (load/payloads.py MULTI_ENCODINGS); False: an experiment with such a model refuses its targets.
    multi_input: ClassVar[bool] = False

    # Whether it serves an ONNX-source card (the ONNX file through ONNX Runtime, or for a
    # TensorFlow server the port of that file); False: such a card's targets are refused by name.
    onnx_source: ClassVar[bool] = False

    def artifact_kind(self, source: SourceKind = "torchscript") -> ArtifactKind:
        """What it loads for a card whose source is ``source`` (``ModelCard.source.kind``): a
        PyTorch-framework server runs the ONNX file itself for an ONNX source."""
        if self.artifact is not None:
            return self.artifact
        if self.framework == "tensorflow":
            return "savedmodel"
        return "onnx" if source == "onnx" else "torchscript"

    def source_refusal(self, source: SourceKind) -> str:
        """Why this server cannot serve a card with this source ("" when it can)."""
        if source == "onnx" and self.framework == "pytorch" and not self.onnx_source:
            return f"{self.label} cannot serve an ONNX source (model card source.onnx) yet"
        return ""

    def package(self, card: ModelCard, art: Artifacts, version: int) -> PackagingRecord | None:
        """Make this server's artifact from the source artifacts in ``art`` (written before);
        None when it serves a source artifact as it is."""
        return None

    @property
    def is_inprocess(self) -> bool:
        return self.wire is None

    def encodings(self, protocol: Protocol) -> tuple[Encoding, ...]:
        for spec in self.protocols:
            if spec.protocol == protocol:
                return spec.encodings
        return ()

    def make_client(
        self, target: Target, address: str, payloads: PayloadSet, timeout_s: float, **options: Any
    ) -> TargetClient:
        for spec in self.protocols:
            if spec.protocol == target.protocol:
                return spec.client_class()(target, address, payloads, timeout_s, **options)
        raise ValueError(f"{self.name}: no client for protocol {target.protocol}")

    # ---- configs (servecmp/configgen calls these; nothing else writes a server config) ---------
    @abstractmethod
    def render(self, exp: Experiment, placement: Placement) -> RenderedConfig:
        """This server's config files and environment for ``exp`` at ``placement``."""

    # ---- local runtime (servecmp/run/orchestrate.py calls these) ----------------------------
    def launcher(self) -> type[LocalServer]:
        raise NotImplementedError(f"{self.name} is an in-process baseline: nothing to launch")

    def publish(self, artifacts: Any, model_root: Path, version: int) -> None:  # noqa: B027 - optional
        """Make ``version`` of the exported model visible where the server loads it from."""

    def update_action(
        self, server: LocalServer, artifacts_v2: Any, model_root: Path
    ) -> Callable[[], None]:
        """What the model-update friction test does to move the live server to version 2."""
        raise NotImplementedError(f"{self.name}: no model-update action")

    def update_how(self, server: LocalServer) -> str:
        """How the model-update friction test moves this server to version 2, when that is not
        what the server's own users do (recorded as the friction record's ``how``); "" otherwise."""
        return ""

    def predict_urls(self, rest_address: str, model: str) -> tuple[str, str]:
        """(predict URL for ``model``, predict URL for a model that does not exist): the bad
        payload probes post here."""
        raise NotImplementedError(f"{self.name}: no REST predict URL")

    def request_body_limit(self, files: dict[str, str]) -> int | None:
        """Largest REST request body (bytes) the server accepts with these generated config
        files; None when it documents no limit. The oversize-body probe sends just over it."""
        return None

    def provenance(self, server: LocalServer) -> dict[str, Any] | None:
        """What actually ran (binary or image version) when it may differ from the pin."""
        return None

    # ---- optional, with defaults ---------------------------------------------------------------
    def breakdown(self, protocol: str | None = None) -> dict[str, PartSource]:
        """The latency breakdown this server declares (``ServerMetrics.breakdown``), for
        ``protocol``'s steps when given (``breakdown_by_protocol`` overrides)."""
        if self.metrics is None:
            return {}
        over = self.metrics.breakdown_by_protocol.get(protocol, {}) if protocol else {}
        return {**self.metrics.breakdown, **over}

    def provenance_label(self, prov: dict[str, Any]) -> str:
        """meta.versions[name] for what ``provenance()`` returned."""
        return str(prov.get("version") or "unknown")

    def run_notes(self, prov: dict[str, Any]) -> list[str]:
        """Notes every run that measured this server states (e.g. what a counter counts, a
        version that differs from the pin), given what ``provenance()`` returned."""
        return []

    def local_paths(self, artifacts: Any, model_root: Path, config_dir: Path) -> dict[str, str]:
        """``Wire.paths`` roles -> where they are on this machine in a local run. ``model_root``
        is this server's own directory under the run dir (``publish`` writes there),
        ``config_dir`` the one its generated files are written to."""
        assert self.wire is not None, f"{self.name}: an in-process baseline has no paths"
        return {
            role: str(config_dir if role == "config" else model_root) for role in self.wire.paths
        }

    # Helm: value key under the server's chart -> generated file passed with ``--set-file``
    # (e.g. {"config.properties": "config.properties"}).
    chart_files: ClassVar[dict[str, str]] = {}

    # What the server's own container is asked to report on the cluster path (``kubectl exec``
    # each command in the running pod; servecmp/cluster/provenance.py), and how to read the outputs.
    runtime_commands: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def parse_runtime(self, outputs: Sequence[str]) -> dict[str, Any]:
        """Versions from the outputs of ``runtime_commands`` (same order)."""
        return {"outputs": [o.strip()[-300:] for o in outputs]}

    def config_surface(self, rendered: RenderedConfig) -> Surface:
        """How much configuration this server needed (friction ``config_*``). The default counts
        every non-comment line as a knob set away from the server's default; a server whose
        defaults are documented overrides it to count only the changed ones."""
        from servecmp.configgen.surface import generic_surface

        return generic_surface(self.name, rendered)
