"""Provenance says which TF Serving served: binary (its `--version`) or Docker (image tag and
digest); a binary whose version differs from the pin is used but labelled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from servecmp import versions
from servecmp.configgen import Placement, render_all
from servecmp.experiment import parse_experiment
from servecmp.servers.tfserving.local import TFServingServer, mismatch_note, provenance_label


def _server(tmp_path: Path) -> TFServingServer:
    exp = parse_experiment(
        {"name": "p", "model": "tiny", "targets": [{"server": "tfserving", "protocol": "rest"}]}
    )
    return TFServingServer(render_all(exp, Placement.kubernetes()), tmp_path, tmp_path, "tiny")


def _fake_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> Path:
    # main.cc (2.20.0) prints "TensorFlow ModelServer: <v>\nTensorFlow Library: <v>"
    bindir = tmp_path / "bin dir"
    bindir.mkdir()
    exe = bindir / "tensorflow_model_server"
    exe.write_text(
        f"#!/bin/sh\necho 'TensorFlow ModelServer: {version}-rc0+dev.sha.0'\n"
        f"echo 'TensorFlow Library: {version}'\n"
    )
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


def test_a_binary_of_another_version_is_used_but_labelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exe = _fake_binary(tmp_path, monkeypatch, "2.19.1")
    server = _server(tmp_path)
    assert server._argv()[0] == str(exe) and server.mode == "binary"
    prov = server.provenance()
    assert (prov["mode"], prov["version"], prov["matches_pin"]) == ("binary", "2.19.1", False)
    assert f"NOT the pinned {versions.TF_SERVING_VERSION}" in provenance_label(prov)
    note = mismatch_note(prov)
    assert note and "2.19.1" in note and versions.TF_SERVING_VERSION in note


def test_the_pinned_binary_is_labelled_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_binary(tmp_path, monkeypatch, versions.TF_SERVING_VERSION)
    server = _server(tmp_path)
    server._argv()
    prov = server.provenance()
    assert prov["matches_pin"] and mismatch_note(prov) is None
    assert provenance_label(prov).startswith(f"{versions.TF_SERVING_VERSION} (binary: ")


def test_docker_provenance_names_the_image_and_digest() -> None:
    prov = {
        "mode": "docker",
        "image": "tensorflow/serving:2.20.0",
        "digest": "tensorflow/serving@sha256:abc",
        "version": "2.20.0",
        "pinned": "2.20.0",
        "matches_pin": True,
    }
    assert provenance_label(prov) == "2.20.0 (docker: tensorflow/serving:2.20.0@sha256:abc)"


def test_the_process_exporter_follows_each_servers_measured_process(tmp_path: Path) -> None:
    """The exporter's series come from measured_pid() (Docker: the container's process), looked
    up at each scrape so a restarted container is followed, not from the `docker run` client."""
    from servecmp.run.orchestrate import LocalRun

    class Stub:
        pid = 4242

        def measured_pid(self) -> int:
            return self.pid

    exp = parse_experiment(
        {"name": "p", "model": "tiny", "targets": [{"server": "tfserving", "protocol": "rest"}]}
    )
    run = LocalRun(exp, run_dir=tmp_path, artifacts_root=tmp_path, prometheus=False)
    stub = Stub()
    run.live_servers["tfserving"] = stub  # type: ignore[assignment]
    assert run.exporter_pids() == {"tfserving": 4242}
    stub.pid = 4343  # a new container after the recovery probe
    assert run.exporter_pids() == {"tfserving": 4343}


def test_a_cpu_set_the_engine_discarded_is_reported_unpinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine without the cpuset/memory controllers warns, discards the limits and runs the
    container anyway (moby daemon/daemon_unix.go): provenance, label and notes say UNPINNED."""
    import json
    import subprocess

    from servecmp.servers.tfserving import ADAPTER
    from servecmp.servers.tfserving import local as tfs_local

    here = sorted(os.sched_getaffinity(0))
    wanted = (here[-1] + 1,)  # a CPU this process does not run on: the set did not take effect
    exp = parse_experiment(
        {"name": "p", "model": "tiny", "targets": [{"server": "tfserving", "protocol": "rest"}]}
    )
    server = TFServingServer(
        render_all(exp, Placement.kubernetes()),
        tmp_path,
        tmp_path,
        "tiny",
        cpus=wanted,
        memory_mib=512,
    )
    server.mode = "docker"
    monkeypatch.setattr(server, "measured_pid", lambda: os.getpid())
    host_config = {"CpusetCpus": "", "Memory": 0}

    def fake_docker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        if args[:1] == ("inspect",) and "{{json .HostConfig}}" in args:
            return subprocess.CompletedProcess(args, 0, json.dumps(host_config), "")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(tfs_local, "_docker", fake_docker)
    prov = server.provenance()
    pin = prov["pinning"]
    assert pin["requested"] and pin["in_effect"] is False
    assert pin["cpus_effective"] == here and len(pin["problems"]) == 3, pin
    assert provenance_label(prov).endswith(", UNPINNED)")
    assert any("UNPINNED" in n and "not comparable" in n for n in ADAPTER.run_notes(prov))

    host_config.update(CpusetCpus=",".join(map(str, wanted)), Memory=512 * 1024 * 1024)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(wanted))
    prov = server.provenance()
    assert prov["pinning"]["in_effect"] is True and "UNPINNED" not in provenance_label(prov)
    assert not any("UNPINNED" in n for n in ADAPTER.run_notes(prov))
