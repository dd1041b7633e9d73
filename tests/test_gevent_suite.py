"""Run tests/gevent_suite in a fresh interpreter (Locust must patch before ssl is imported)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.load  # Locust steps against local doubles, in a fresh interpreter


def test_gevent_suite_passes_in_its_own_process() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "gevent_suite"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=HERE.parent,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
