"""scripts/setup.sh leaves no packaged service on the ports the kind config maps: Debian's
prometheus package enables and starts prometheus.service on :9090 where systemd runs
(scripts/stop-packaged-prometheus.sh turns it off). Fake systemctl / init script on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helm_util import ROOT

SCRIPT = ROOT / "scripts" / "stop-packaged-prometheus.sh"


def _fake(bindir: Path, name: str, body: str) -> Path:
    path = bindir / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)
    return path


def _run(
    tmp: Path,
    *,
    systemd: bool,
    enabled: bool = False,
    active: bool = False,
    initd_running: bool | None = None,
) -> list[str]:
    bindir = tmp / "bin"
    bindir.mkdir()
    _fake(
        bindir,
        "systemctl",
        f'case "$1" in is-enabled) exit {0 if enabled else 1};; '
        f"is-active) exit {0 if active else 3};; esac; exit 0",
    )
    _fake(bindir, "sudo", 'exec "$@"')
    _fake(bindir, "id", "echo 1000")  # not root: the script must go through sudo
    _fake(bindir, "update-rc.d", "exit 0")
    initd = tmp / "init.d"
    initd.mkdir()
    if initd_running is not None:
        _fake(initd, "prometheus", f'[ "$1" = status ] && exit {0 if initd_running else 3}; exit 0')
    run_dir = tmp / "run-systemd-system"
    if systemd:
        run_dir.mkdir()
    calls = tmp / "calls"
    calls.touch()
    env = {
        "PATH": f"{bindir}:/usr/bin:/bin",
        "CALLS": str(calls),
        "SYSTEMD_RUN": str(run_dir),
        "INITD": str(initd),
        "HOME": str(tmp),
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return calls.read_text().splitlines()


@pytest.mark.parametrize(("enabled", "active"), [(True, True), (True, False), (False, True)])
def test_systemd_host_gets_the_service_disabled_and_stopped(
    tmp_path: Path, enabled: bool, active: bool
) -> None:
    calls = _run(tmp_path, systemd=True, enabled=enabled, active=active)
    assert "sudo systemctl disable --now prometheus.service" in calls


def test_systemd_host_with_the_service_off_is_left_alone(tmp_path: Path) -> None:
    calls = _run(tmp_path, systemd=True)
    assert not any("disable" in c or "stop" in c for c in calls)


def test_sysvinit_host_gets_the_init_script_stopped_and_disabled(tmp_path: Path) -> None:
    calls = _run(tmp_path, systemd=False, initd_running=True)
    assert any(c.endswith("prometheus stop") for c in calls)
    assert "sudo update-rc.d prometheus disable" in calls
    assert not any(c.startswith("systemctl") for c in calls)


def test_host_without_the_package_or_systemd_is_untouched(tmp_path: Path) -> None:
    calls = _run(tmp_path, systemd=False)
    assert [c for c in calls if not c.startswith("id")] == []


def test_setup_turns_the_service_off_after_installing_packages() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    install = setup.index("apt-get install")
    stop = setup.index("bash scripts/stop-packaged-prometheus.sh")
    assert install < stop
    # not inside the apt branch: a prometheus installed earlier is turned off too
    assert setup[install:stop].count("\nfi\n") >= 1
    assert os.access(SCRIPT, os.X_OK)
