"""One package root: a module's import path is its file path (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
# Folders of Python files that are scripts run by path, never imported as a package.
SCRIPT_DIRS = {"scripts", "tests", "loadtests/locustfiles"}


def test_pyproject_maps_no_folder_and_discovers_servecmp() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "package-dir" not in cfg and "packages" in cfg
    assert cfg["packages"]["find"]["include"] == ["servecmp*"]


def test_every_folder_with_python_under_servecmp_is_a_package() -> None:
    found = set(find_packages(str(ROOT), include=["servecmp*"]))
    folders = {p.parent for p in (ROOT / "servecmp").rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(
        str(f.relative_to(ROOT))
        for f in folders
        if ".".join(f.relative_to(ROOT).parts) not in found
    )
    assert not missing, f"add an __init__.py (else the wheel drops them): {missing}"


def test_no_python_module_lives_outside_the_package_root() -> None:
    stray = []
    for py in ROOT.rglob("*.py"):
        rel = py.relative_to(ROOT)
        if rel.parts[0].startswith(".") or rel.parts[0] in {"build", "runs", "servecmp"}:
            continue
        if not any(rel.as_posix().startswith(d + "/") for d in SCRIPT_DIRS):
            stray.append(rel.as_posix())
    assert not stray, (
        f"Python code belongs under servecmp/ (or is a script in {SCRIPT_DIRS}): {stray}"
    )


def test_test_doubles_are_not_importable_from_the_package() -> None:
    # A test double may never be started by the CLI or reported as a server.
    for py in (ROOT / "servecmp").rglob("*.py"):
        text = py.read_text()
        assert "tests.doubles" not in text and "tfserving_double" not in text, py
