"""``servecmp kind up|load|down``: one library function per subcommand.

Each is the single call site of its step. Today they run ``scripts/kind-*.sh`` (prerequisite
checks, then the Python modules of this package); when that logic moves to Python, only the body
of these functions changes, not the CLI or the Makefile.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def _script(name: str, args: Sequence[str]) -> int:
    # bash explicitly (a checkout may lose the exec bit); cwd = the checkout, which the scripts
    # expect for relative experiment paths.
    return subprocess.call(["bash", str(SCRIPTS / name), *args], cwd=REPO)


def up(experiment: str | Path) -> int:
    """Create (or reuse) the kind cluster and install monitoring + every server chart."""
    return _script("kind-up.sh", [str(experiment)])


def load(
    experiment: str | Path,
    *,
    targets: Sequence[str] = (),
    recover: bool = False,
    engine: str = "steps",
    locust_options: Sequence[str] = (),
) -> int:
    """In-cluster load against each target; steps land in runs/kind-<time>/."""
    args = [str(experiment), "--engine", engine]
    for t in targets:
        args += ["--target", t]
    if recover:
        args.append("--recover")
    return _script("kind-load.sh", [*args, *locust_options])


def down() -> int:
    """Delete the kind cluster (idempotent)."""
    return _script("kind-down.sh", [])
