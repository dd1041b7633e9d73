"""One local KServe for a model, outside a full run (tests, benchmarks): the generated flags,
the exported .mar's TorchScript file, the project's process runtime."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servecmp.deploy.configgen.render import GeneratedConfigs
from servecmp.deploy.local.ports import free_ports
from servecmp.deploy.local.server import ServerUnavailable
from servecmp.experiment import parse_experiment
from servecmp.servers.kserve import ADAPTER, WIRE
from servecmp.servers.kserve.local import KServeServer


@dataclass(frozen=True)
class LocalPlacement:
    """The registry-driven Placement's interface (``port``/``path`` by server and role), for the
    one server started here."""

    ports: Mapping[str, Mapping[str, int]]
    paths: Mapping[str, Mapping[str, str]]
    kind: str = "local"
    bind_host: str = "127.0.0.1"
    extra: dict[str, object] = field(default_factory=dict)

    def port(self, server: str, role: str) -> int:
        return int(self.ports[server][role])

    def path(self, server: str, role: str) -> str:
        return str(self.paths[server][role])


def local_placement(model_root: Path, config_dir: Path) -> LocalPlacement:
    """Free loopback ports; ports sharing a Wire number (rest and metrics) share one."""
    numbers = list(dict.fromkeys(p.number for p in WIRE.ports))
    free = dict(zip(numbers, free_ports(len(numbers)), strict=True))
    return LocalPlacement(
        ports={"kserve": {p.role: free[p.number] for p in WIRE.ports}},
        paths={"kserve": {"models": str(model_root), "config": str(config_dir)}},
    )


def start_kserve(
    model: str, work_dir: Path, artifacts_root: Path, *, cpus: tuple[int, ...] | None = None,
    ready_timeout_s: float = 180.0, **experiment_fields: object,
) -> KServeServer:
    """Start KServe serving v1 of ``model`` (exported under ``artifacts_root``) and wait until it
    is ready. The caller stops it (``server.stop()``)."""
    from servecmp.models.export import artifacts

    reason = KServeServer.availability()
    if reason:
        raise ServerUnavailable(reason)
    art = artifacts(model, Path(artifacts_root).resolve())
    work_dir = Path(work_dir).resolve()
    model_root, config_dir = work_dir / "models" / "kserve", work_dir / "configs" / "kserve"
    ADAPTER.publish(art, model_root, 1)
    exp = parse_experiment({"name": "standalone", "model": model,
                            "targets": [{"server": "kserve", "protocol": "rest"}], **experiment_fields})
    placement = local_placement(model_root, config_dir)
    rendered = ADAPTER.render(exp, placement)  # type: ignore[arg-type, unused-ignore]
    config_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        (config_dir / name).write_text(text)
    configs = GeneratedConfigs(placement=placement, files={"kserve": rendered.files},  # type: ignore[arg-type, unused-ignore]
                               env={"kserve": rendered.env})
    server = KServeServer(configs, config_dir, work_dir, model, cpus=cpus, memory_mib=exp.resources.memory_mib)
    server.start()
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
