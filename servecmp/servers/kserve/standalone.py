"""One local KServe for a model, outside a full run (tests, benchmarks): the generated flags,
the exported .mar's TorchScript file, the project's process runtime."""

from __future__ import annotations

from pathlib import Path

from servecmp.configgen.placement import Placement
from servecmp.configgen.render import GeneratedConfigs
from servecmp.experiment import parse_experiment
from servecmp.run.server import ServerUnavailable
from servecmp.servers.kserve import ADAPTER
from servecmp.servers.kserve.local import KServeServer


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
    # Free loopback ports for this one server (rest and metrics share one: one socket).
    placement = Placement.local({"kserve": {"models": str(model_root), "config": str(config_dir)}},
                                adapters=[ADAPTER])
    rendered = ADAPTER.render(exp, placement)
    config_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.files.items():
        (config_dir / name).write_text(text)
    configs = GeneratedConfigs(placement=placement, files={"kserve": rendered.files}, env={"kserve": rendered.env})
    server = KServeServer(configs, config_dir, work_dir, model, cpus=cpus, memory_mib=exp.resources.memory_mib)
    server.start()
    try:
        server.wait_ready(timeout_s=ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server
