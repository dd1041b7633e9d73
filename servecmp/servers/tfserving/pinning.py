"""Whether the CPU set and memory limit asked for actually hold for the running TF Serving.

An engine without the cpuset or memory cgroup controller warns, discards the limit and runs the
container anyway (moby daemon/daemon_unix.go ``verifyPlatformContainerResources``: "Cpuset
discarded", "Limitation discarded"), so a limit passed on the command line proves nothing. What
is read back: the affinity of the server's own process (``sched_getaffinity``), and in Docker
mode the container's ``HostConfig.CpusetCpus`` / ``HostConfig.Memory`` and, where this host can
read it, the cgroup v2 ``memory.max`` of that process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def parse_cpuset(text: str) -> set[int]:
    """A cpuset list ("0-2,5") as a set of CPU numbers; an empty text is the empty set."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _own_cgroup() -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    return next((ln.split("::", 1)[1] for ln in lines if ln.startswith("0::")), None)


def cgroup_memory_max(pid: int) -> int | None:
    """The cgroup v2 memory.max of ``pid`` in bytes (None: unlimited, cgroup v1 or unreadable)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    rel = next((ln.split("::", 1)[1] for ln in lines if ln.startswith("0::")), None)
    if rel is None or rel == _own_cgroup():
        return None  # no cgroup v2, or ours: not a container's own cgroup
    try:
        value = (Path("/sys/fs/cgroup") / rel.lstrip("/") / "memory.max").read_text().strip()
    except OSError:
        return None
    return int(value) if value.isdigit() else None


def check(
    pid: int | None,
    cpus: tuple[int, ...] | None,
    memory_mib: int | None,
    inspect: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Requested vs in effect. ``inspect``: Docker's HostConfig (``CpusetCpus``, ``Memory``), None
    in binary mode, where the local runtime enforces no memory limit (only Docker does)."""
    problems: list[str] = []
    out: dict[str, Any] = {
        "cpus_requested": sorted(cpus) if cpus else None,
        "memory_requested_bytes": None,
    }
    if cpus:
        affinity = sorted(os.sched_getaffinity(pid)) if pid is not None else None
        out["cpus_effective"] = affinity
        if affinity is None:
            problems.append("the server's process is not visible, its CPU affinity is unknown")
        elif set(affinity) != set(cpus):
            problems.append(f"CPU affinity is {affinity}, not the CPU set {sorted(cpus)}")
        if inspect is not None:
            cpuset = parse_cpuset(str(inspect.get("CpusetCpus") or ""))
            out["docker_cpuset"] = sorted(cpuset)
            if cpuset != set(cpus):
                problems.append(
                    f"docker inspect HostConfig.CpusetCpus is {sorted(cpuset) or 'empty'}"
                )
    if inspect is not None and memory_mib:
        want = memory_mib * 1024 * 1024
        out["memory_requested_bytes"] = want
        have = int(inspect.get("Memory") or 0)
        out["docker_memory_bytes"] = have
        if have != want:
            problems.append(
                f"docker inspect HostConfig.Memory is {have or 'unlimited'}, not {want}"
            )
        cg = cgroup_memory_max(pid) if pid is not None else None
        out["cgroup_memory_max_bytes"] = cg
        if cg is not None and cg != want:
            problems.append(f"cgroup memory.max is {cg}, not {want}")
    out["requested"] = bool(cpus) or out["memory_requested_bytes"] is not None
    out["in_effect"] = not problems if out["requested"] else None
    out["problems"] = problems
    return out
