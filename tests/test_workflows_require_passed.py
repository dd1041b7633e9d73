"""The workflows that exist to run the real-server tests fail when every one of them skipped
(pytest itself exits 0 then): their test steps write a JUnit report and
scripts/require_passed.py requires at least one passed test in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "require_passed.py"


def _pytest_report(tmp_path: Path, body: str) -> Path:
    (tmp_path / "test_one.py").write_text(f"import pytest\n\n\ndef test_one():\n    {body}\n")
    report = tmp_path / "out dir" / "junit.xml"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            "/dev/null",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_one.py"),
            f"--junitxml={report}",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    return report


@pytest.mark.parametrize(("body", "rc"), [("pytest.skip('no binary')", 1), ("assert True", 0)])
def test_require_passed_fails_when_every_test_skipped(tmp_path: Path, body: str, rc: int) -> None:
    report = _pytest_report(tmp_path, body)
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(report)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == rc, out.stdout + out.stderr


def test_require_passed_names_an_unreadable_report(tmp_path: Path) -> None:
    bad = tmp_path / "x.xml"
    bad.write_text("<html/>")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and str(bad) in out.stderr and "testsuite" in out.stderr


@pytest.mark.parametrize(
    ("workflow", "step"),
    [("tfserving-local.yml", "Real TF Serving tests"), ("kind-e2e.yml", "End-to-end on kind")],
)
def test_the_real_server_steps_require_a_passed_test(workflow: str, step: str) -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())
    steps = [s for job in doc["jobs"].values() for s in job["steps"] if s.get("name") == step]
    assert len(steps) == 1
    run = steps[0]["run"]
    report = re.search(r"--junitxml=(\S+)", run)
    assert report, run
    assert re.search(rf"scripts/require_passed\.py {re.escape(report.group(1))}(\s|$)", run), run
    # the check runs only after pytest itself succeeded (&&, or a new line of a `bash -e` step)
    assert run.index("pytest") < run.index("require_passed.py")
