"""docs/ARCHITECTURE.md shows the real tree: every top-level folder, every package, every server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from servecmp.servers import registry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def _tree() -> str:
    """The first fenced block of the document: the tree."""
    m = re.search(r"```\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"{DOC}: no fenced tree block"
    return m.group(1)


def _named(tree: str) -> set[str]:
    """Folder paths the tree names: each indented `name/` line under its parent."""
    out: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in tree.splitlines():
        m = re.match(r"^( *)([\w.\-]+/)", line)
        if not m:
            continue
        indent, name = len(m.group(1)), m.group(2).rstrip("/")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = f"{stack[-1][1]}/{name}" if stack else name
        out.add(path)
        stack.append((indent, path))
    return out


def _tracked_top_level_folders() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}


def test_every_top_level_folder_is_in_the_tree() -> None:
    named = _named(_tree())
    missing = sorted(_tracked_top_level_folders() - named)
    assert not missing, f"docs/ARCHITECTURE.md's tree lacks top-level folders: {missing}"


def test_every_package_under_servecmp_is_in_the_tree() -> None:
    named = _named(_tree())
    packages = {
        init.parent.relative_to(ROOT).as_posix()
        for init in (ROOT / "servecmp").rglob("__init__.py")
    }
    missing = sorted(packages - named)
    assert not missing, f"docs/ARCHITECTURE.md's tree lacks packages: {missing}"


def test_every_registered_server_package_is_in_the_tree() -> None:
    named = _named(_tree())
    for name in registry.names():
        folder = registry.MODULES[name].split(":")[0].replace(".", "/")
        if (ROOT / folder).is_dir():
            assert folder in named, (
                f"docs/ARCHITECTURE.md's tree lacks the server package {folder}/"
            )


def test_the_tree_names_no_folder_that_does_not_exist() -> None:
    stale = sorted(p for p in _named(_tree()) if not (ROOT / p).is_dir())
    assert not stale, f"docs/ARCHITECTURE.md's tree names folders that do not exist: {stale}"
