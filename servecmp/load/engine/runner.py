"""Parent side: run one step in a child process with a hard deadline, return its StepResult.

The child (``python -m servecmp.load.engine.step``) appends its own result line to
``steps.jsonl``. When the child overruns the deadline it is killed (SIGKILL, by its own pid)
and the parent appends a ``stop_reason="deadline"`` result; when it dies without a line, the
parent appends ``stop_reason="error"`` with the tail of its log. Earlier lines are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from servecmp.load.engine.spec import StepSpec
from servecmp.results.schema import StepResult
from servecmp.results.store import RunStore
from servecmp.run import watchdog


def _tail(path: Path, n: int = 3000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-n:].decode("utf-8", "replace")


def run_step(
    spec: StepSpec,
    run_dir: str | os.PathLike[str],
    *,
    cpus: Sequence[int] | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    deadline_s: float | None = None,
) -> StepResult:
    """Run ``spec`` in a child process pinned to ``cpus``; block until its result is on disk.

    ``deadline_s`` overrides ``spec.hard_deadline_s()`` (measurement bound + request timeout +
    grace). The child's stdout/stderr go to ``<run_dir>/logs/step-<step_id>.log``.
    """
    run = Path(run_dir)
    if cpus is not None:
        spec = spec.model_copy(update={"cpus": list(cpus)})
    spec_path = spec.write(run / "specs" / f"{spec.safe_id}.json")
    log_path = run / "logs" / f"step-{spec.safe_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    store = RunStore(run)
    child_env = dict(os.environ if env is None else env)
    deadline = spec.hard_deadline_s() if deadline_s is None else deadline_s
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "servecmp.load.engine.step",
                "--spec",
                str(spec_path),
                "--out",
                str(run),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            start_new_session=True,  # the child's signals never reach us
        )
        watchdog.register(proc.pid)  # dies with the orchestrator, even on kill -9
        try:
            proc.wait(timeout=deadline)
        except BaseException as exc:  # Ctrl-C / SIGTERM of the parent: the child goes too
            if not isinstance(exc, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=30)
                raise
            proc.kill()  # this child only, by its pid
            proc.wait(timeout=30)
            watchdog.unregister(proc.pid)
            from servecmp.load.engine.step import failed_result

            result = failed_result(
                spec,
                "deadline",
                f"step process exceeded its hard deadline of {deadline:.0f}s and was killed\n{_tail(log_path)}",
            )
            store.append_step(result)
            return result
    watchdog.unregister(proc.pid)
    found = store.find_step(spec.step_id)
    if found is not None:
        return found
    from servecmp.load.engine.step import failed_result

    result = failed_result(
        spec,
        "error",
        f"step process exited with {proc.returncode} without a result\n{_tail(log_path)}",
    )
    store.append_step(result)
    return result
