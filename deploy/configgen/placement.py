"""Where the servers run: addresses, ports and paths differ, settings do not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Ports:
    # TorchServe defaults (docs: configuration.md); TF Serving defaults: 8500 gRPC, 8501 REST.
    ts_inference: int = 8080
    ts_management: int = 8081
    ts_metrics: int = 8082
    ts_grpc_inference: int = 7070
    ts_grpc_management: int = 7071
    tfs_grpc: int = 8500
    tfs_rest: int = 8501

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Placement:
    kind: Literal["local", "kubernetes"]
    bind_host: str
    ports: Ports = field(default_factory=Ports)
    # Directory holding <model>.mar (TorchServe's model store).
    ts_model_store: str = "/home/model-server/model-store"
    # Directory holding <model>/<version>/saved_model.pb (TF Serving's base paths live under it).
    tfs_model_root: str = "/models"
    # Directories the generated files are read from by the servers (flags reference them).
    ts_config_dir: str = "/config/torchserve"
    tfs_config_dir: str = "/config/tfserving"

    @classmethod
    def kubernetes(cls) -> Placement:
        """Inside a pod: listen on all interfaces, default ports, mounted paths (see helm/)."""
        return cls(kind="kubernetes", bind_host="0.0.0.0")

    @classmethod
    def local(
        cls,
        ports: Ports,
        *,
        ts_model_store: str,
        tfs_model_root: str,
        ts_config_dir: str,
        tfs_config_dir: str,
    ) -> Placement:
        """Plain processes on this machine: loopback only, so nothing is exposed beyond it."""
        return cls(
            kind="local",
            bind_host="127.0.0.1",
            ports=ports,
            ts_model_store=ts_model_store,
            tfs_model_root=tfs_model_root,
            ts_config_dir=ts_config_dir,
            tfs_config_dir=tfs_config_dir,
        )
