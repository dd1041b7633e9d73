"""Locally built images of the kind path: what a Dockerfile copies, a tag from that content, and
loading an image onto the one node that runs it.

- :func:`parse_dockerfile` reads the few instructions we rely on (FROM/AS, WORKDIR, COPY, ENV,
  USER, RUN, exec-form ENTRYPOINT/CMD). Tests use it to lay out an image's working directory without Docker.
- :func:`context_digest` hashes the *working tree* content of every path the Dockerfile copies
  from the build context (plus the Dockerfile), so an edited but unstaged file changes the tag
  (hashing the git index, as before, kept serving a stale image).
- :func:`load_image` runs ``kind load docker-image --nodes <node>`` and, when that fails (a known
  failure with Docker's containerd image store: "content digest ... not found"), falls back to
  ``docker save`` + ``kind load image-archive --nodes <node>``. Both subcommands take
  ``--name`` and ``--nodes`` (kind v0.27.0 pkg/cmd/kind/load/docker-image/docker-image.go and
  pkg/cmd/kind/load/image-archive/image-archive.go).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Never part of an image (also listed in .dockerignore).
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


@dataclass
class Copy:
    sources: list[str]
    dest: str
    from_stage: str | None = None


@dataclass
class Stage:
    base: str
    name: str | None = None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)  # exec form only (JSON array)
    cmd: list[str] = field(default_factory=list)
    # WORKDIR in effect at each COPY (a relative COPY dest is relative to it)
    copy_workdirs: list[str] = field(default_factory=list)


def _logical_lines(text: str) -> Iterator[str]:
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # comment inside a continuation
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        yield (buf + line).strip()
        buf = ""
    if buf.strip():
        yield buf.strip()


def _env_pairs(arg: str) -> dict[str, str]:
    parts = shlex.split(arg)
    if parts and "=" not in parts[0]:  # legacy "ENV KEY value"
        return {parts[0]: " ".join(parts[1:])}
    return dict(p.split("=", 1) for p in parts)


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile with the instructions this project uses."""
    stages: list[Stage] = []
    for line in _logical_lines(Path(path).read_text()):
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        arg = arg.strip()
        if instr == "FROM":
            words = arg.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
            continue
        if not stages:
            continue
        st = stages[-1]
        if instr == "WORKDIR":
            st.workdir = arg if arg.startswith("/") else f"{st.workdir.rstrip('/')}/{arg}"
        elif instr == "ENV":
            st.env.update(_env_pairs(arg))
        elif instr == "USER":
            st.user = arg
        elif instr in ("ENTRYPOINT", "CMD"):
            try:
                words = json.loads(arg)
            except json.JSONDecodeError:
                raise ValueError(
                    f"{path}: {instr} must use the exec form (a JSON array): {arg}"
                ) from None
            if instr == "ENTRYPOINT":
                st.entrypoint = [str(w) for w in words]
            else:
                st.cmd = [str(w) for w in words]
        elif instr == "RUN":
            st.runs.append(arg)
        elif instr in ("COPY", "ADD"):
            words = shlex.split(arg)
            from_stage = None
            plain = []
            for w in words:
                if w.startswith("--from="):
                    from_stage = w.split("=", 1)[1]
                elif not w.startswith("--"):
                    plain.append(w)
            st.copies.append(Copy(sources=plain[:-1], dest=plain[-1], from_stage=from_stage))
            st.copy_workdirs.append(st.workdir)
    if not stages:
        raise ValueError(f"{path}: no FROM instruction")
    return stages


def context_sources(dockerfile: Path) -> list[str]:
    """Build-context paths the Dockerfile copies (every stage, COPY without --from)."""
    out: list[str] = []
    for st in parse_dockerfile(dockerfile):
        for c in st.copies:
            if c.from_stage is None:
                out += [s.rstrip("/") or "." for s in c.sources]
    return sorted(set(out))


def _files(root: Path, rel: str) -> Iterator[Path]:
    p = root / rel
    if p.is_file():
        yield p
        return
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: copied by the Dockerfile but missing from the build context")
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS)
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(dirpath) / name


def context_digest(dockerfile: Path, context: Path, extra: Sequence[str] = ()) -> str:
    """sha256 over the Dockerfile and the working-tree bytes (and names) of what it copies."""
    h = hashlib.sha256()
    h.update(Path(dockerfile).read_bytes())
    for item in extra:  # e.g. build args
        h.update(item.encode())
    for rel in context_sources(dockerfile):
        for f in _files(context, rel):
            h.update(str(f.relative_to(context)).encode() + b"\0")
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def image_tag(dockerfile: Path, context: Path, prefix: str = "") -> str:
    digest = context_digest(dockerfile, context)[:12]
    return f"{prefix}-{digest}" if prefix else digest


# ---- loading into kind --------------------------------------------------------------------------
Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True)


def load_image(
    image: str,
    cluster: str,
    nodes: Sequence[str],
    *,
    run: Runner = _run,
    tmpdir: Path | None = None,
) -> str:
    """Load ``image`` onto ``nodes`` only. Returns how ("docker-image" or "image-archive")."""
    node_arg = ["--nodes", ",".join(nodes)] if nodes else []
    first = run(["kind", "load", "docker-image", "--name", cluster, *node_arg, image])
    if first.returncode == 0:
        return "docker-image"
    with tempfile.TemporaryDirectory(dir=tmpdir) as td:
        archive = str(Path(td) / "image.tar")
        saved = run(["docker", "save", "-o", archive, image])
        if saved.returncode != 0:
            raise RuntimeError(
                f"kind load docker-image {image} failed:\n{first.stderr.strip()}\n"
                f"and docker save failed too:\n{saved.stderr.strip()}"
            )
        second = run(["kind", "load", "image-archive", "--name", cluster, *node_arg, archive])
        if second.returncode != 0:
            raise RuntimeError(
                f"kind load docker-image {image} failed:\n{first.stderr.strip()}\n"
                f"and kind load image-archive failed too:\n{second.stderr.strip()}"
            )
    return "image-archive"


def nodes_with_role(kind_config: Path, role: str, cluster: str) -> list[str]:
    """Node names (as kind names them) carrying label servecmp.io/role=<role> in the kind config.

    kind names nodes ``<cluster>-control-plane``, ``<cluster>-worker``, ``<cluster>-worker2``, ...
    in config order (kind v0.27.0 pkg/cluster/internal/providers/common/namer.go: MakeNodeNamer)."""
    import yaml

    cfg = yaml.safe_load(Path(kind_config).read_text())
    counts: dict[str, int] = {}
    out = []
    for node in cfg["nodes"]:
        r = node.get("role", "control-plane")
        counts[r] = counts.get(r, 0) + 1
        suffix = "" if counts[r] == 1 else str(counts[r])
        name = f"{cluster}-{r}{suffix}"
        if (node.get("labels") or {}).get("servecmp.io/role") == role:
            out.append(name)
    return out
