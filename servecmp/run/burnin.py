"""Burn-in of each local server before round 1 and again after every restart.

A restart is seen as a change of the server's measured root process (pid and start time), so a
server restarted anywhere (a probe, a supervisor) is burned in again before its next step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import psutil

from servecmp.experiment import Experiment, Target
from servecmp.load.engine.burnin import describe, run_burn_in
from servecmp.results.schema import BurnInRecord
from servecmp.run.server import LocalServer


def identity(server: LocalServer) -> tuple[int, float] | None:
    """(pid, start time) of the server's measured root process; None when it is not running."""
    pid = server.measured_pid()
    if pid is None:
        return None
    try:
        return pid, psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class BurnIns:
    def __init__(
        self,
        exp: Experiment,
        run_dir: Path,
        run_id: str,
        *,
        payloads_path: str | None,
        cpus: Sequence[int] | None,
        log: Callable[[str], None],
    ) -> None:
        self.exp = exp
        self.payloads_path = payloads_path
        self.out_dir = run_dir / "burn-in"  # its own steps.jsonl: never among the measured steps
        self.run_id = run_id
        self.cpus = cpus
        self.log = log
        self.records: list[BurnInRecord] = []
        self._seen: dict[str, tuple[int, float]] = {}

    def ensure(self, server: LocalServer, target: Target) -> BurnInRecord | None:
        """Burn ``server`` in unless it already was since it last (re)started."""
        ident = identity(server)
        if (
            ident is None
            or self._seen.get(server.name) == ident
            or self.exp.load.burn_in.max_s <= 0
        ):
            return None
        after: Literal["start", "restart"] = "restart" if server.name in self._seen else "start"
        self.log(
            f"burn-in: {server.name} after its {after} (at most {self.exp.load.burn_in.max_s:g} s)"
        )
        pids = [p.pid for p in _tree(ident[0])]
        record = run_burn_in(
            self.exp,
            target,
            server.address(target.protocol),
            self.out_dir,
            run_id=self.run_id,
            after=after,
            number=len(self.records),
            cpus=self.cpus,
            server_pids=pids,
            payloads_path=self.payloads_path,
        )
        self._seen[server.name] = identity(server) or ident
        if record is not None:
            self.records.append(record)
            self.log(f"  {describe(record)}")
        return record

    def notes(self) -> list[str]:
        return [describe(r) for r in self.records]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
