"""The experiment file: one YAML document drives every server config, the local runtime and kind.

Validated with pydantic; every error names the field path and what was expected
(``load.profile: Input should be 'open_loop', 'closed_loop' or 'rate_sweep'``).
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)


class ExperimentError(ValueError):
    """A malformed experiment file; the message names the file and each bad field."""


class Protocol(StrEnum):
    rest = "rest"
    grpc = "grpc"
    inprocess = "inprocess"


class Encoding(StrEnum):
    json = "json"  # {"instances": [...]} / JSON nested list: the same body shape on both servers
    raw = "raw"  # raw little-endian float32 bytes (TorchServe's native best over REST)
    b64 = "b64"  # base64 of raw float32 in JSON {"b64": ...} (TF Serving's binary-in-JSON)
    tensorproto = "tensorproto"  # TF Serving gRPC PredictRequest TensorProto
    bytes = "bytes"  # TorchServe gRPC PredictionsRequest input["data"] = raw float32 bytes
    ndarray = "ndarray"  # in-process: numpy array handed to the framework directly
    # Open Inference Protocol (v2): REST JSON {"inputs": [{name, shape, datatype FP32, data}]};
    # gRPC ModelInferRequest with the float32 bytes in raw_input_contents.
    oip = "oip"
    # OIP REST with the binary tensor extension: a JSON header (each input's binary_data_size),
    # then each tensor's raw little-endian bytes; binary outputs asked for and read the same way.
    oip_binary = "oip-binary"


def known_servers() -> tuple[str, ...]:
    """Every server name an experiment may target: the registry's (servecmp/servers/registry.py)."""
    from servecmp.servers import registry

    return registry.names()


def allowed_encodings(server: str, protocol: Protocol) -> tuple[Encoding, ...]:
    """Which encodings ``server`` takes over ``protocol`` (its adapter's ProtocolSpec); the
    first is its fair default, the others are native extras. Empty: the pair does not exist."""
    from servecmp.servers import registry

    return registry.get(server).encodings(protocol)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Target(_Strict):
    """One column of the comparison: a server reached over one protocol with one payload encoding."""

    server: str = Field(
        description="a server name from the registry (servecmp/servers/registry.py)"
    )
    protocol: Protocol
    encoding: Encoding | None = Field(
        default=None, description="payload encoding; default: the pair's common encoding"
    )

    @field_validator("server")
    @classmethod
    def _known_server(cls, v: str) -> str:
        known = known_servers()
        if v not in known:
            hint = (
                " (an ONNX card's in-process baseline is server: pytorch, which runs the file in "
                "ONNX Runtime)"
                if v.lower() in ("onnxruntime", "onnx", "ort")
                else ""
            )
            raise ValueError(f"server {v!r} is unknown{hint}; known servers: {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _check_pair(self) -> Target:
        if not allowed_encodings(self.server, self.protocol):
            from servecmp.servers import registry

            allowed = sorted(
                f"{a.name}/{spec.protocol.value}"
                for a in registry.adapters()
                for spec in a.protocols
            )
            raise ValueError(
                f"server {self.server!r} cannot be reached over {self.protocol.value!r}; "
                f"allowed server/protocol pairs: {', '.join(allowed)}"
            )
        allowed_enc = allowed_encodings(self.server, self.protocol)
        if self.encoding is not None and self.encoding not in allowed_enc:
            raise ValueError(
                f"encoding {self.encoding.value!r} is not valid for "
                f"{self.server}/{self.protocol.value}; allowed: {', '.join(e.value for e in allowed_enc)}"
            )
        return self

    @property
    def effective_encoding(self) -> Encoding:
        return self.encoding or allowed_encodings(self.server, self.protocol)[0]

    @property
    def name(self) -> str:
        """Stable id used in results, metrics labels and report columns, e.g. ``torchserve-rest-json``."""
        if self.protocol is Protocol.inprocess:
            return f"{self.server}-inprocess"
        return f"{self.server}-{self.protocol.value}-{self.effective_encoding.value}"

    @property
    def is_baseline(self) -> bool:
        return self.protocol is Protocol.inprocess

    @property
    def is_native_extra(self) -> bool:
        """A server's best native encoding rather than the fair common one (every encoding after
        the first its adapter lists): reported as an extra, clearly labelled target."""
        return self.effective_encoding != allowed_encodings(self.server, self.protocol)[0]


class Payload(_Strict):
    batch_size: Annotated[int, Field(ge=1, le=256)] = 1
    # Number of distinct seeded inputs cycled through; each response is checked against the
    # expected logits for its input.
    distinct_inputs: Annotated[int, Field(ge=1, le=4096)] = 64
    atol: Annotated[float, Field(gt=0, le=1.0)] = 1e-3


class LoadProfile(StrEnum):
    open_loop = "open_loop"
    closed_loop = "closed_loop"
    rate_sweep = "rate_sweep"


class Arrival(StrEnum):
    uniform = "uniform"
    poisson = "poisson"


class Stability(_Strict):
    """Measurement windows repeat until the last ``windows`` agree within ``tolerance`` or time runs out."""

    window_s: Annotated[float, Field(gt=0, le=600)] = 5.0
    windows: Annotated[int, Field(ge=2, le=20)] = 3
    tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.10
    max_windows: Annotated[int, Field(ge=2, le=100)] = 6


class BurnIn(_Strict):
    """Load before round 1 and after every server restart, until the server's throughput stops
    changing beyond its sampling noise (the steadiness rule on throughput), within ``max_s``."""

    # at most this long per server (0: no burn-in); it stops as soon as throughput has settled
    max_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    window_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    # closed-loop users driving it (default: the largest of load.concurrency)
    concurrency: Annotated[int, Field(ge=1, le=1024)] | None = None

    @model_validator(mode="after")
    def _room_for_windows(self) -> BurnIn:
        if 0 < self.max_s < BURN_IN_WINDOWS * self.window_s:
            raise ValueError(
                f"max_s ({self.max_s:g} s) must allow {BURN_IN_WINDOWS} windows of window_s "
                f"({self.window_s:g} s), i.e. at least {BURN_IN_WINDOWS * self.window_s:g} s, or be 0 (no burn-in)"
            )
        return self


# windows a burn-in compares (a trend needs three)
BURN_IN_WINDOWS = 3


class Load(_Strict):
    profile: LoadProfile = LoadProfile.closed_loop
    arrival: Arrival = Arrival.poisson
    warmup_s: Annotated[float, Field(ge=0, le=600)] = 3.0
    stability: Stability = Stability()
    # open_loop: one fixed arrival rate (req/s)
    rate: Annotated[float, Field(gt=0, le=100_000)] = 20.0
    # closed_loop: concurrency levels (in-flight requests) swept in order
    concurrency: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default_factory=lambda: [1, 4])
    # rate_sweep: rates tried in order until the p99 SLO breaks
    rates: list[Annotated[float, Field(gt=0, le=100_000)]] = Field(
        default_factory=lambda: [10.0, 20.0, 40.0, 80.0]
    )
    slo_p99_ms: Annotated[float, Field(gt=0, le=60_000)] = 100.0
    # Hard per-request timeout; a request that takes longer is a transport error.
    request_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Upper bound on requests in one step, whatever the time settings say (every loop stops by itself).
    max_requests_per_step: Annotated[int, Field(ge=1, le=10_000_000)] = 200_000
    # A step is invalid when the load generator itself was the bottleneck.
    generator_cpu_limit: Annotated[float, Field(gt=0, le=1.0)] = 0.90
    late_send_tolerance: Annotated[float, Field(ge=0, le=1.0)] = 0.05
    late_threshold_ms: Annotated[float, Field(gt=0)] = 10.0
    # Each target's whole profile runs `repeats` times, interleaved across targets (round 1:
    # A B C, round 2: A B C, ...): drift on a shared machine hits every target alike, and the
    # report states each difference with an interval estimated from the paired repeats.
    repeats: Annotated[int, Field(ge=1, le=20)] = 1
    burn_in: BurnIn = BurnIn()
    # Rounds that measure the in-process baselines: "every" round, or only the "first" (no paired
    # verdict rests on a baseline; they are references, and a step each per level and round).
    baseline_rounds: Literal["every", "first"] = "every"

    @model_validator(mode="after")
    def _non_empty(self) -> Load:
        if self.profile is LoadProfile.closed_loop and not self.concurrency:
            raise ValueError("load.concurrency must list at least one level for closed_loop")
        if self.profile is LoadProfile.rate_sweep and not self.rates:
            raise ValueError("load.rates must list at least one rate for rate_sweep")
        return self


class Resources(_Strict):
    """The budget every server gets: the same for all, translated into each server's own knobs."""

    cpus: Annotated[float, Field(gt=0, le=256)] = 1.0
    memory_mib: Annotated[int, Field(ge=256, le=1_048_576)] = 2048
    # local runtime: pin servers and generator to disjoint CPU sets (auto = when >= 2 cores)
    pinning: Literal["auto", "on", "off"] = "auto"


# The largest batch, in examples, either server is asked to form (TF Serving's max_batch_size is
# max_batch_size x payload.batch_size; the same bound as tuning.batching.max_batch_size itself).
MAX_EXAMPLES_PER_BATCH = 1024


class Batching(_Strict):
    enabled: bool = False
    max_batch_size: Annotated[int, Field(ge=1, le=1024)] = 8
    batch_timeout_ms: Annotated[float, Field(ge=0, le=10_000)] = 5.0
    # TF Serving: queued batches allowed before rejecting; TorchServe: job_queue_size derives from it
    max_enqueued_batches: Annotated[int, Field(ge=1, le=100_000)] = 100


LogLevel = Literal["default", "quiet"]


class ServerTuning(_Strict):
    """One server's overrides of ``tuning``; a field left out keeps the shared value."""

    workers: Annotated[int, Field(ge=1, le=64)] | None = None
    intra_op_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    io_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    batching: Batching | None = None
    logging: LogLevel | None = None


class Tuning(_Strict):
    # Model instances: TorchServe workers per model. TF Serving runs one session; its
    # parallelism comes from inter-op threads, so ``workers`` maps to inter_op threads there.
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Threads per instance for the model math; default derives from resources.cpus / workers.
    # (TF Serving has one process-wide pool: it gets this x workers, i.e. the whole budget.)
    intra_op_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    # TorchServe's netty I/O threads; default derives from cpus. Not TF Serving's REST pool,
    # which runs requests to completion (servecmp/servers/tfserving/config.py rest_api_num_threads).
    io_threads: Annotated[int, Field(ge=1, le=256)] | None = None
    batching: Batching = Batching()
    # What each server logs: "default" is its own out-of-the-box logging (TorchServe: an access
    # line, "Backend response time" and DEBUG lines per request; KServe: uvicorn's access line,
    # a timing line and a gRPC method line per request); "quiet": warnings and errors only.
    logging: LogLevel = "default"
    # Each server's own configuration (``servecmp tune`` writes these): applied by configgen and
    # the baselines when that server is rendered or run (``Experiment.for_server``), on top of the
    # shared settings above. Empty: every server runs the shared settings (the defaults).
    per_server: dict[str, ServerTuning] = Field(default_factory=dict)  # server name -> its own


class EventLoad(_Strict):
    """The steady load under which the model-update and kill probes run, the same for every
    server, and the span of their per-second timeline around the event (t = 0)."""

    rate: Annotated[float, Field(gt=0, le=1000)] = 20.0  # requests per second, all senders
    concurrency: Annotated[int, Field(ge=1, le=64)] = 1  # senders, each paced at rate/concurrency
    before_s: Annotated[float, Field(ge=1, le=120)] = 10.0
    after_s: Annotated[float, Field(ge=1, le=300)] = 20.0


class Friction(_Strict):
    """How the friction measurements are taken."""

    # start-ups per server, interleaved across servers (A B, B A, ...): cold start and idle
    # memory are measured at each, so a friction verdict rests on more than one sample
    startups: Annotated[int, Field(ge=1, le=20)] = 5
    event_load: EventLoad = EventLoad()


class Cost(_Strict):
    """Prices for "cost per million requests under the SLO" (report); no price, no cost."""

    per_core_hour: Annotated[float, Field(ge=0)] | None = None
    per_gib_hour: Annotated[float, Field(ge=0)] | None = None
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "USD"


class Experiment(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")]
    description: str = ""
    # A built-in model's name or a model card file (models/<name>.yaml, relative to the
    # experiment file); after validation ``model`` is the model's name and ``model_card`` the
    # card's absolute path (None for a built-in).
    model: str = Field(default="resnet", description="a built-in model or a model card file")
    model_card: str | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 1234
    targets: list[Target] = Field(min_length=1)
    payload: Payload = Payload()
    load: Load = Load()
    resources: Resources = Resources()
    tuning: Tuning = Tuning()
    friction: Friction = Friction()
    cost: Cost = Cost()
    # Which configuration the servers run: "defaults" (the shared settings) or "tuned" (each its
    # own best from ``servecmp tune``, in tuning.per_server). The report's title says which.
    configuration: Literal["defaults", "tuned"] = "defaults"

    @model_validator(mode="before")
    @classmethod
    def _resolve_model(cls, data: object, info: ValidationInfo) -> object:
        """A card path becomes (name, absolute card path); the card is loaded and registered."""
        from servecmp.models.card import ModelCardError, is_card_ref
        from servecmp.models.registry import UnknownModelError, get_model, register_card

        if not isinstance(data, dict):
            return data
        ref, card_path = data.get("model", "resnet"), data.get("model_card")
        if not isinstance(ref, str):
            return data
        if card_path is None and is_card_ref(ref):
            base = (info.context or {}).get("base_dir")
            p = Path(ref)
            if not p.is_absolute() and base is not None and (Path(base) / p).is_file():
                p = Path(base) / p
            card_path = str(p.resolve())
        try:
            card = register_card(card_path) if card_path else get_model(ref)
            name = card.name
            limit = card.load_limits()
            if limit:
                raise ModelCardError(limit)
        except (ModelCardError, UnknownModelError) as err:
            raise ValueError(
                str(err) if str(err).startswith("model") else f"model: {err}"
            ) from None
        if card_path and not is_card_ref(ref) and ref != name:
            raise ValueError(f"model: {ref!r} but model_card {card_path} names {name!r}")
        return {**data, "model": name, "model_card": card_path}

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"targets: duplicate target(s) {', '.join(dupes)}")
        if self.tuning.per_server and self.configuration != "tuned":
            raise ValueError(
                "tuning.per_server gives servers their own configurations: set "
                "`configuration: tuned` so every report says so"
            )
        in_targets = {t.server for t in self.targets}
        for server in self.tuning.per_server:
            if server not in in_targets:
                raise ValueError(
                    f"tuning.per_server.{server}: no target of this server in the experiment; "
                    f"servers with targets: {', '.join(sorted(in_targets))}"
                )
        for b in [
            self.tuning.batching,
            *(o.batching for o in self.tuning.per_server.values() if o.batching),
        ]:
            self._check_batch(b)
        self._check_unbatched(in_targets)
        self._check_model_inputs()
        return self

    def _check_model_inputs(self) -> None:
        """A model with several (or integer) inputs only on targets that can send them."""
        from servecmp.load.payloads import MULTI_ENCODINGS
        from servecmp.models.registry import get_model
        from servecmp.servers import registry

        card = get_model(self.model)
        refused = [
            f"{t.name} ({why})"
            for t in self.targets
            if (why := registry.get(t.server).source_refusal(card.source.kind))
        ]
        if refused:
            raise ValueError(
                f"targets: model {self.model!r} has an ONNX source; " + "; ".join(refused)
            )
        if not card.port and not card.source.tf_mirror:
            need = [
                t.name
                for t in self.targets
                if registry.get(t.server).artifact_kind() == "savedmodel"
            ]
            if need:
                raise ValueError(
                    f"targets: model {self.model!r}: its card says port: false (no SavedModel), "
                    f"but {', '.join(need)} serve the SavedModel; remove them or drop port: false"
                )
        if not card.is_multi:
            return
        bad = [
            t.name
            for t in self.targets
            if not registry.get(t.server).multi_input
            or t.effective_encoding.value not in MULTI_ENCODINGS
        ]
        if bad:
            able = [a.name for a in registry.adapters() if a.multi_input]
            raise ValueError(
                f"targets: model {self.model!r} has inputs {card.describe_inputs()}; "
                f"{', '.join(bad)} cannot send them (servers taking several inputs: "
                f"{', '.join(able)}; encodings: {', '.join(MULTI_ENCODINGS)})"
            )

    def _check_unbatched(self, servers: set[str]) -> None:
        """Batching on for a server that cannot batch is refused, not run unbatched under a
        batched label."""
        from servecmp.servers import registry

        for server in sorted(servers):
            adapter = registry.get(server)
            if adapter.server_batching or not self.for_server(server).tuning.batching.enabled:
                continue
            own = self.tuning.per_server.get(server)
            where = (
                f"tuning.per_server.{server}.batching.enabled"
                if own and own.batching
                else "tuning.batching.enabled"
            )
            raise ValueError(
                f"{where} is true, but {adapter.label} has no server-side batching (its targets would "
                f"run unbatched under a batched label): set it to false, or drop the {server} targets"
            )

    def _check_batch(self, b: Batching) -> None:
        examples = b.max_batch_size * self.payload.batch_size
        if b.enabled and examples > MAX_EXAMPLES_PER_BATCH:
            # TF Serving counts a batch in examples (batching_session.h: a task's size is its 0th
            # dimension), TorchServe in requests: the same batch is max_batch_size x batch_size.
            raise ValueError(
                f"payload.batch_size ({self.payload.batch_size}) x tuning.batching.max_batch_size "
                f"({b.max_batch_size}) = {examples} examples per batch; at most "
                f"{MAX_EXAMPLES_PER_BATCH} can be batched (TF Serving's max_batch_size counts "
                "examples): lower one of them"
            )

    def for_server(self, server: str) -> Experiment:
        """This experiment as ``server`` runs it: its ``tuning.per_server`` entry (if any) merged
        into the shared tuning. Config rendering and the baselines read tuning through this."""
        override = self.tuning.per_server.get(server)
        if override is None:
            return self
        tuning = self.tuning.model_copy(
            update={k: v for k, v in override if v is not None} | {"per_server": {}}
        )
        return self.model_copy(update={"tuning": tuning})

    # ---- derived, fair-by-construction settings -------------------------------------------
    @property
    def intra_op_threads(self) -> int:
        """Math threads per model instance, derived from the CPU budget, never the node's cores."""
        if self.tuning.intra_op_threads is not None:
            return self.tuning.intra_op_threads
        return max(1, int(self.resources.cpus) // self.tuning.workers)

    @property
    def io_threads(self) -> int:
        if self.tuning.io_threads is not None:
            return self.tuning.io_threads
        return max(1, int(self.resources.cpus))

    def fairness_settings(self) -> dict[str, object]:
        """The settings two runs must share to be compared (report refuses otherwise)."""
        return (
            {
                "model": self.model,
                "resources.cpus": self.resources.cpus,
                "resources.memory_mib": self.resources.memory_mib,
                "tuning.workers": self.tuning.workers,
                "threads.intra_op": self.intra_op_threads,
                "threads.io": self.io_threads,
                "tuning.batching": self.tuning.batching.model_dump(),
                "payload.batch_size": self.payload.batch_size,
                "payload.encodings": sorted(f"{t.name}" for t in self.targets),
            }
            | self._tuned_settings()
            | ({} if self.tuning.logging == "default" else {"tuning.logging": self.tuning.logging})
        )

    def _tuned_settings(self) -> dict[str, object]:
        if self.configuration == "defaults" and not self.tuning.per_server:
            return {}  # absent, so runs stored before per-server tuning existed still compare
        return {
            "configuration": f"{self.configuration}: each server runs its own tuned configuration "
            "(tuning.per_server) within the same resource budget",
            "tuning.per_server": {
                s: o.model_dump(mode="json", exclude_none=True)
                for s, o in sorted(self.tuning.per_server.items())
            },
        }

    def digest(self) -> str:
        """Hash of the normalised experiment (not of the file's formatting)."""
        data = self.model_dump(mode="json")
        # Fields added with per-server tuning count only when set: older digests stay valid.
        if not data["tuning"]["per_server"]:
            del data["tuning"]["per_server"]
        if data["configuration"] == "defaults":
            del data["configuration"]
        if data["load"]["burn_in"] == BurnIn().model_dump(mode="json"):
            del data["load"]["burn_in"]  # added later: the default keeps older digests
        if data["load"]["baseline_rounds"] == "every":
            del data["load"]["baseline_rounds"]  # added later: the default keeps older digests
        if data["tuning"]["logging"] == "default":
            del data["tuning"]["logging"]
        if data["friction"]["event_load"] == EventLoad().model_dump(mode="json"):
            del data["friction"]["event_load"]  # added later: the default keeps older digests
        if data["friction"] == {"startups": Friction().startups}:
            del data["friction"]
        if data["cost"] == Cost().model_dump(mode="json"):
            del data["cost"]
        if data["model_card"] is None:
            del data["model_card"]  # built-ins: added later, older digests stay valid
        else:  # the card's content, not where this checkout keeps it
            card = Path(data["model_card"])
            data["model_card"] = [card.name, hashlib.sha256(card.read_bytes()).hexdigest()]
        for o in data["tuning"].get("per_server", {}).values():
            if o.get("logging") is None:
                o.pop("logging", None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid experiment ({err.error_count()} error(s))"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see loadtests/experiments/*.yaml for the schema)"
        if e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_experiment(
    data: object, source: str = "<experiment>", base_dir: Path | None = None
) -> Experiment:
    """``base_dir``: where a relative model card path is looked up first (the file's folder)."""
    if not isinstance(data, dict):
        raise ExperimentError(
            f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}"
        )
    try:
        return Experiment.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        raise ExperimentError(_format_errors(source, err)) from None


def load_experiment(path: str | Path) -> Experiment:
    p = Path(path)
    if not p.is_file():
        raise ExperimentError(f"{p}: experiment file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ExperimentError(f"{p}: not valid YAML: {err}") from None
    return parse_experiment(data, str(p), base_dir=p.parent)


def with_overrides(exp: Experiment, **changes: object) -> Experiment:
    """A copy with top-level fields replaced, re-validated."""
    data = exp.model_dump(mode="json")
    data.update(changes)
    return parse_experiment(data)
