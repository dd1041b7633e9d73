"""Where the servers run: addresses, ports and paths differ, settings do not.

Ports and paths are keyed by server name and role (``Port.role``, ``Wire.paths`` keys): the
numbers and in-container paths come from each adapter's ``Wire`` (servecmp/servers/<name>/), so no server
is named here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from servecmp.servers.base import ServerAdapter


def _servers(adapters: Iterable[ServerAdapter] | None) -> tuple[ServerAdapter, ...]:
    if adapters is not None:
        return tuple(a for a in adapters if a.wire is not None)
    from servecmp.servers import registry

    return registry.servers()


@dataclass(frozen=True)
class Placement:
    kind: Literal["local", "kubernetes"]
    bind_host: str
    # server -> port role -> port number (the roles of the server's Wire.ports)
    ports: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # server -> path role -> path (the roles of the server's Wire.paths: model root, config dir)
    paths: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def port(self, server: str, role: str) -> int:
        try:
            return self.ports[server][role]
        except KeyError:
            raise KeyError(
                f"placement {self.kind}: no {role!r} port for server {server!r}"
            ) from None

    def path(self, server: str, role: str) -> str:
        try:
            return self.paths[server][role]
        except KeyError:
            raise KeyError(
                f"placement {self.kind}: no {role!r} path for server {server!r}"
            ) from None

    @classmethod
    def kubernetes(cls, adapters: Iterable[ServerAdapter] | None = None) -> Placement:
        """Inside a pod: listen on all interfaces, each server's Wire ports and paths (the chart
        receives the same Wire as generated values)."""
        servers = _servers(adapters)
        return cls(
            kind="kubernetes",
            bind_host="0.0.0.0",
            ports={a.name: {p.role: p.number for p in a.wire.ports} for a in servers if a.wire},
            paths={a.name: dict(a.wire.paths) for a in servers if a.wire},
        )

    @classmethod
    def local(
        cls,
        paths: Mapping[str, Mapping[str, str]],
        ports: Mapping[str, Mapping[str, int]] | None = None,
        *,
        adapters: Iterable[ServerAdapter] | None = None,
    ) -> Placement:
        """Plain processes on this machine: loopback only, so nothing is exposed beyond it.

        ``paths``: server -> role -> local path. ``ports`` (tests) fixes the numbers; by default
        every socket of every server gets a free loopback port (ports of one server that share a
        Wire number share the free port too: one socket in two roles)."""
        servers = _servers(adapters)
        if ports is None:
            from servecmp.run.ports import free_ports

            sockets = [
                (a.name, n)
                for a in servers
                if a.wire
                for n in dict.fromkeys(p.number for p in a.wire.ports)
            ]
            free = dict(zip(sockets, free_ports(len(sockets)), strict=True))
            ports = {
                a.name: {p.role: free[(a.name, p.number)] for p in a.wire.ports}
                for a in servers
                if a.wire
            }
        missing = [a.name for a in servers if a.name not in paths]
        if missing:
            raise ValueError(f"Placement.local: no local paths for server(s) {', '.join(missing)}")
        return cls(
            kind="local",
            bind_host="127.0.0.1",
            ports={k: dict(v) for k, v in ports.items()},
            paths={k: dict(v) for k, v in paths.items()},
        )
