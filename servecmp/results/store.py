"""The run directory on disk: append-only ``steps.jsonl``, ``targets.jsonl``, ``meta.json``.

Each finished step is one JSON line, written with a single ``write`` then ``flush`` +
``os.fsync``: a crash (or a killed step process) can at worst leave a truncated *last* line,
which :meth:`RunStore.read_steps` tolerates and reports; earlier lines stay intact. A bad line
anywhere else, or a line of another ``format_version``, is an error naming the file and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from servecmp.results.schema import (
    RunMeta,
    StepResult,
    TargetAvailability,
    check_version,
)

STEPS = "steps.jsonl"
TARGETS = "targets.jsonl"
META = "meta.json"

M = TypeVar("M", bound=BaseModel)


class StoreError(ValueError):
    """A malformed results file; the message names the file and line."""


@dataclass
class StepsRead:
    steps: list[StepResult] = field(default_factory=list)
    truncated_last_line: bool = False
    warnings: list[str] = field(default_factory=list)


def _repair_torn_tail(path: Path) -> None:
    """A previous writer died mid-line: move the fragment to ``<file>.torn`` and cut it off, so
    the next record starts on its own line (the fragment is kept as evidence, never parsed)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        fh.seek(0)
        data = fh.read()
        cut = data.rfind(b"\n") + 1
        with path.with_name(path.name + ".torn").open("ab") as torn:
            torn.write(data[cut:] + b"\n")
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def _append_line(path: Path, record: BaseModel) -> None:
    line = record.model_dump_json() + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_torn_tail(path)
    # O_APPEND: one write() per record; fsync before returning so a finished step survives a crash.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = line.encode()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_jsonl(path: Path, model: type[M]) -> tuple[list[M], bool, list[str]]:
    records: list[M] = []
    warnings: list[str] = []
    truncated = False
    if not path.exists():
        return records, truncated, warnings
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    ends_with_newline = raw.endswith(b"\n")
    if ends_with_newline:
        lines = lines[:-1]
    for i, line in enumerate(lines, start=1):
        is_last = i == len(lines)
        if not line.strip():
            continue
        where = f"{path} line {i}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            if is_last:
                truncated = True
                warnings.append(
                    f"{where}: truncated last line ignored ({len(line)} bytes, {err.msg}); "
                    f"the step that was being written did not finish"
                )
                continue
            raise StoreError(f"{where}: not valid JSON ({err.msg})") from None
        check_version(data, where)
        try:
            records.append(model.model_validate(data))
        except ValidationError as err:
            raise StoreError(f"{where}: not a valid {model.__name__}: {err}") from None
    torn = path.with_name(path.name + ".torn")
    if torn.exists():
        warnings.append(
            f"{torn}: fragments of unfinished writes were moved here (a step process died mid-write)"
        )
    if lines and not ends_with_newline and not truncated:
        # a complete JSON object without its newline: keep it, but say so
        warnings.append(f"{path}: last line has no trailing newline")
    return records, truncated, warnings


class RunStore:
    """Read/write one run directory (``runs/<run_id>/``)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(run_dir)

    @property
    def steps_path(self) -> Path:
        return self.dir / STEPS

    # ---- steps ----------------------------------------------------------------------------
    def append_step(self, result: StepResult) -> None:
        _append_line(self.steps_path, result)

    def read_steps(self) -> StepsRead:
        steps, truncated, warnings = _read_jsonl(self.steps_path, StepResult)
        return StepsRead(steps, truncated, warnings)

    def find_step(self, step_id: str) -> StepResult | None:
        found = [s for s in self.read_steps().steps if s.step_id == step_id]
        return found[-1] if found else None

    # ---- targets --------------------------------------------------------------------------
    def append_target(self, availability: TargetAvailability) -> None:
        _append_line(self.dir / TARGETS, availability)

    def read_targets(self) -> list[TargetAvailability]:
        return _read_jsonl(self.dir / TARGETS, TargetAvailability)[0]

    # ---- meta -----------------------------------------------------------------------------
    def write_meta(self, meta: RunMeta) -> Path:
        path = self.dir / META
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        with tmp.open("w") as fh:
            fh.write(meta.model_dump_json(indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def read_meta(self) -> RunMeta:
        path = self.dir / META
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StoreError(f"{path}: not found (is {self.dir} a run directory?)") from None
        except json.JSONDecodeError as err:
            raise StoreError(f"{path}: not valid JSON ({err.msg})") from None
        check_version(data, str(path))
        return RunMeta.model_validate(data)
