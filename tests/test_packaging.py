"""The distribution lists every package folder (the package-dir mapping rules out discovery)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = cfg["package-dir"]
    listed = set(cfg["packages"])
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    # Nested mapped packages are found twice (via servecmp/ and their own folder): same names.
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    stale = sorted(p for p in listed if p not in found)
    assert not stale, f"listed but no such package folder: {stale}"


def test_test_doubles_are_not_importable_from_the_package() -> None:
    # A test double may never be started by the CLI or reported as a server.
    for folder in ("servecmp", "models", "deploy", "loadtests"):
        for py in (ROOT / folder).rglob("*.py"):
            text = py.read_text()
            assert "tests.doubles" not in text and "tfserving_double" not in text, py
