"""servecmp/cluster/commands.py called as a library (what `servecmp kind up|load|down` calls), with a
recording Ops: no docker, kind, kubectl or helm runs. The shell-level dry run of the same flow is
tests/test_kind_scripts.py."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from helm_util import ROOT

from servecmp.cluster import commands, preflight

QUICK = Path("loadtests/experiments/quick.yaml")


class RecordingOps(commands.Ops):
    """Answers like a host with no cluster yet and no image built; records every call."""

    def __init__(self, root: Path, cluster: bool = False) -> None:
        super().__init__(root=root, helm="helm", python="python", quiet=True)
        self.calls: list[list[str]] = []
        self.cluster = cluster

    def run(self, cmd: Sequence[str], *, check: bool = True, capture: bool = False,
            stdin: str | None = None, stdout: Any = None) -> subprocess.CompletedProcess[str]:
        cmd = list(cmd)
        self.calls.append(cmd)
        rc, out = 0, ""
        if cmd[:3] == ["docker", "image", "inspect"]:
            rc = 1  # nothing built yet
        elif cmd[:3] == ["kind", "get", "clusters"]:
            out = "servecmp\n" if self.cluster else ""
        elif cmd[:3] == ["python", "-m", "servecmp.cli"] and "export" in cmd:
            model = cmd[cmd.index("--model") + 1]
            out_dir = Path(cmd[cmd.index("--out") + 1]) / model
            (out_dir / "torchserve").mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(out_dir / "torchserve" / f"{model}.mar", "w") as zf:
                zf.writestr("model.pt", b"torchscript")
            (out_dir / "tfserving" / model / "1").mkdir(parents=True, exist_ok=True)
            (out_dir / "tfserving" / model / "1" / "saved_model.pb").write_bytes(b"pb")
        return subprocess.CompletedProcess(cmd, rc, out, "")


@pytest.fixture()
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "a checkout"
    for item in ("deploy", "helm", "servecmp", "loadtests"):
        shutil.copytree(ROOT / item, root / item, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for item in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, root / item)
    monkeypatch.chdir(root)
    monkeypatch.setattr(preflight, "host_cpus", lambda: (8.0, "test"))
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: None)
    return root


def test_up_builds_the_local_server_images_and_loads_every_server_image(checkout: Path, monkeypatch) -> None:
    assert (checkout / "servecmp" / "servers" / "kserve" / "model_server.py").is_file()  # hashed into the tag
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 0
    builds = [c[c.index("-f") + 1] for c in ops.calls if c[:2] == ["docker", "build"]]
    assert sorted(Path(b).name for b in builds) == ["artifacts.Dockerfile", "kserve.Dockerfile",
                                                    "torchserve.Dockerfile"]  # tfserving is pulled
    loads = [c[-1] for c in ops.calls if c[:3] == ["kind", "load", "docker-image"]]
    assert [i.split(":")[0] for i in loads] == ["servecmp/model-artifacts", "servecmp/kserve", "tensorflow/serving",
                                                "servecmp/torchserve"]
    # TF Serving: pulled on the host before the chart install and loaded like the built ones,
    # so its install -> Ready holds no registry download the others never pay
    tfs = next(i for i in loads if i.startswith("tensorflow/serving:"))
    pull = ops.calls.index(["docker", "pull", tfs])
    load = next(i for i, c in enumerate(ops.calls) if c[:3] == ["kind", "load", "docker-image"] and c[-1] == tfs)
    (install,) = [i for i, c in enumerate(ops.calls) if c[:4] == ["helm", "upgrade", "--install", "servecmp"]]
    assert pull < load < install
    assert ops.calls[load][ops.calls[load].index("--nodes") + 1] == "servecmp-worker"
    (chart,) = [c for c in ops.calls if c[:4] == ["helm", "upgrade", "--install", "servecmp"]]
    sets = [chart[i + 1] for i, a in enumerate(chart) if a == "--set"]
    kserve_tag = next(s for s in sets if s.startswith("kserve.image.tag="))
    assert kserve_tag.startswith("kserve.image.tag=kserve0.21.0-py3.11-torch2.13.0-")
    assert f"servecmp/kserve:{kserve_tag.split('=', 1)[1]}" in loads
    assert not any(s.startswith("tfserving.image.tag=") for s in sets)
    # the generated values carry the wire the chart renders from
    values = (checkout / "build" / "kind" / "experiment-values.yaml").read_text()
    assert "wire:" in values and "metricsPort" in values


def test_up_stops_before_creating_anything_when_it_does_not_fit(checkout: Path, monkeypatch) -> None:
    monkeypatch.setattr(preflight, "host_cpus", lambda: (2.0, "test"))
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 3
    assert not any(c[:1] in (["kind"], ["docker"], ["helm"]) for c in ops.calls)


def test_up_stops_before_creating_anything_when_a_mapped_port_is_taken(checkout: Path, monkeypatch,
                                                                      capsys) -> None:
    held = {9090: "pid 812 (prometheus: /usr/bin/prometheus)"}
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: held.get(port))
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 4
    err = capsys.readouterr().err
    assert "127.0.0.1:9090 held by pid 812 (prometheus" in err and "3000" not in err
    assert ops.calls == [["kind", "get", "clusters"]]  # nothing created, built or installed


def test_up_reuses_an_existing_cluster_without_a_port_check(checkout: Path, monkeypatch) -> None:
    # the existing cluster's own node container holds the mapped ports
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: "pid 1 (docker-proxy)")
    ops = RecordingOps(checkout, cluster=True)
    assert commands.up(QUICK, ops=ops) == 0
    assert not any(c[:3] == ["kind", "create", "cluster"] for c in ops.calls)


def test_up_reports_a_failed_step_with_its_command(checkout: Path, monkeypatch, capsys) -> None:

    class Failing(RecordingOps):
        def run(self, cmd, **kw):  # type: ignore[no-untyped-def, override]
            proc = super().run(cmd, **kw)
            if list(cmd)[:3] == ["kind", "create", "cluster"]:
                raise commands.KindError(f"`{' '.join(cmd)}` failed (exit 1)")
            return proc

    assert commands.up(QUICK, ops=Failing(checkout)) == 1
    assert "kind create cluster --name servecmp" in capsys.readouterr().err


@pytest.mark.parametrize(("kw", "message"), [
    ({"engine": "wrk"}, "expected steps or locust"),
    ({"locust_args": {"duration": 30}}, "--duration applies to --engine locust only"),
    ({"engine": "locust", "locust_args": {"rate": 3}}, "unknown Locust option(s) ['rate']"),
])
def test_load_refuses_bad_options_before_touching_anything(checkout: Path, capsys, kw, message) -> None:
    ops = RecordingOps(checkout, cluster=True)
    assert commands.load(QUICK, ops=ops, **kw) == 2
    assert message in capsys.readouterr().err and ops.calls == []


def test_load_needs_a_cluster(checkout: Path, capsys) -> None:
    ops = RecordingOps(checkout, cluster=False)
    assert commands.load(QUICK, ops=ops) == 1
    assert "run `servecmp kind up`" in capsys.readouterr().err
    assert ops.calls == [["kind", "get", "clusters"]]


@pytest.mark.parametrize("exists", [True, False])
def test_down_deletes_only_an_existing_cluster(checkout: Path, exists: bool) -> None:
    ops = RecordingOps(checkout, cluster=exists)
    assert commands.down(ops=ops) == 0
    deletes = [c for c in ops.calls if c[:2] == ["kind", "delete"]]
    assert deletes == ([["kind", "delete", "cluster", "--name", "servecmp"]] if exists else [])


def test_settings_come_from_versions_env() -> None:
    s = commands.Settings.load()
    env = (ROOT / "deploy" / "kind" / "versions.env").read_text()
    assert f"KIND_CLUSTER_NAME={s.cluster}" in env and f"KPS_CHART_VERSION={s.kps_chart_version}" in env
    assert s.context == f"kind-{s.cluster}"


def test_extra_helm_args_reach_the_chart_install(checkout: Path, monkeypatch) -> None:
    import yaml

    # an experiment without KServe targets: its image is neither built nor loaded
    exp = yaml.safe_load((checkout / QUICK).read_text())
    exp["targets"] = [t for t in exp["targets"] if t["server"] != "kserve"]
    no_kserve = checkout / "loadtests" / "experiments" / "no-kserve.yaml"
    no_kserve.write_text(yaml.safe_dump(exp))
    ops = RecordingOps(checkout)
    assert commands.up(no_kserve, ops=ops, helm_args=["--set", "global.replicas=2"]) == 0
    (chart,) = [c for c in ops.calls if c[:4] == ["helm", "upgrade", "--install", "servecmp"]]
    assert chart[-2:] == ["--set", "global.replicas=2"]  # last: overrides the generated values
    assert not any(c[:2] == ["docker", "build"] and any("kserve" in a for a in c) for c in ops.calls)
