"""meta.json of a kind run (issue 10, items 4 and 10): the server images with digests and the
runtime versions the servers' own containers report (not this host's venv), and the truth about
CPU placement on kind (nodes share the host's cores). kubectl is replaced by a recorded-output
runner; parsing is checked against the servers' documented output formats."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helm_util import ROOT

from servecmp.cluster import provenance as kp
from servecmp.experiment import load_experiment

QUICK = ROOT / "loadtests" / "experiments" / "quick.yaml"

TS_POD = {
    "metadata": {"name": "servecmp-torchserve-7d9c-abcde"},
    "spec": {
        "containers": [
            {"name": "torchserve", "image": "servecmp/torchserve:0.12.0-py3.11-torch2.13.0-abc"}
        ]
    },
    "status": {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "torchserve",
                "image": "docker.io/servecmp/torchserve:0.12.0-py3.11-torch2.13.0-abc",
                "imageID": "docker.io/servecmp/torchserve@sha256:1111",
                "ready": True,
                "restartCount": 0,
            }
        ],
    },
}
TF_POD = {
    "metadata": {"name": "servecmp-tfserving-5f-xyz"},
    "spec": {"containers": [{"name": "tfserving", "image": "tensorflow/serving:2.19.0"}]},
    "status": {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "tfserving",
                "image": "docker.io/tensorflow/serving:2.19.0",
                "imageID": "docker.io/tensorflow/serving@sha256:2222",
                "ready": True,
                "restartCount": 0,
            }
        ],
    },
}
NODES = {
    "items": [
        {
            "metadata": {
                "name": "servecmp-control-plane",
                "labels": {"servecmp.io/role": "monitoring"},
            },
            "status": {"allocatable": {"cpu": "2", "memory": "24Gi"}},
        },
        {
            "metadata": {"name": "servecmp-worker", "labels": {"servecmp.io/role": "server"}},
            "status": {"allocatable": {"cpu": "2"}},
        },
        {
            "metadata": {"name": "servecmp-worker2", "labels": {"servecmp.io/role": "loadgen"}},
            "status": {"allocatable": {"cpu": "2000m"}},
        },
    ]
}


def _fake_kubectl(calls: list[list[str]]):
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        out, err = "", ""
        if "get" in cmd and "pods" in cmd:
            sel = cmd[cmd.index("-l") + 1]
            out = json.dumps({"items": [TS_POD] if "torchserve" in sel else [TF_POD]})
        elif "exec" in cmd and "torchserve" in cmd:
            if "python" in cmd:
                out = '{"python": "3.11.11", "torch": "2.13.0+cpu", "torchserve": "0.12.0", "torch-model-archiver": "0.12.0"}\n'
            else:
                err = 'openjdk version "17.0.14" 2025-01-21\nOpenJDK Runtime Environment (build 17.0.14+7-Debian-1deb12u1)\n'
        elif "exec" in cmd:
            out = "TensorFlow ModelServer: 2.19.0-rc0+dev.sha.abc\nTensorFlow Library: 2.19.0\n"
        return subprocess.CompletedProcess(cmd, 0, out, err)

    return run


def test_server_images_and_runtimes_come_from_the_server_pods() -> None:
    calls: list[list[str]] = []
    got = kp.server_provenance(
        ["kubectl", "--context", "kind-servecmp"], "servecmp", _fake_kubectl(calls)
    )
    ts, tf = got["torchserve"], got["tfserving"]
    assert ts["images"] == [
        {
            "container": "torchserve",
            "image": TS_POD["spec"]["containers"][0]["image"],
            "digest": "sha256:1111",
        }
    ]
    assert ts["runtime"] == {
        "python": "3.11.11",
        "torch": "2.13.0+cpu",
        "torchserve": "0.12.0",
        "torch-model-archiver": "0.12.0",
        "java": "17.0.14",
    }
    assert tf["runtime"] == {
        "tensorflow_model_server": "2.19.0-rc0+dev.sha.abc",
        "tensorflow": "2.19.0",
    }
    assert tf["images"][0]["digest"] == "sha256:2222"
    execs = [c for c in calls if "exec" in c]
    assert all(
        c[c.index("exec") + 1].startswith(("servecmp-torchserve", "servecmp-tfserving"))
        for c in execs
    )


def test_placement_truth_says_kind_nodes_share_the_host_cores() -> None:
    truth = kp.placement_truth(2.0, "docker info NCPU", NODES["items"])
    assert truth["host_cpus"] == 2.0 and truth["nodes_share_host_cores"] is True
    assert truth["server_and_generator_can_contend"] is True
    assert truth["nodes"]["servecmp-worker2"] == {"role": "loadgen", "allocatable_cpu": 2.0}
    assert "share" in truth["note"] and "2 cores" in truth["note"]


def test_meta_json_of_a_kind_run_records_servers_and_cluster_and_the_report_shows_them(
    tmp_path: Path,
) -> None:
    from servecmp.report.build import provenance_table
    from servecmp.report.data import load_run
    from servecmp.results.provenance import build_meta
    from servecmp.results.store import RunStore

    exp = load_experiment(QUICK)
    servers = kp.server_provenance(["kubectl"], "servecmp", _fake_kubectl([]))
    truth = kp.placement_truth(2.0, "test", NODES["items"])
    meta = build_meta(exp, "kind-x", placement={"kind": "kind cluster", "note": truth["note"]})
    meta = meta.model_copy(update={"servers": servers, "cluster": truth})
    store = RunStore(tmp_path / "kind-x")
    store.write_meta(meta)
    data = json.loads((tmp_path / "kind-x" / "meta.json").read_text())
    assert data["servers"]["torchserve"]["runtime"]["torch"] == "2.13.0+cpu"
    assert data["cluster"]["server_and_generator_can_contend"] is True
    run = load_run(tmp_path / "kind-x")
    rows = {r[0]: r[1] for r in provenance_table(run).rows}
    assert "sha256:1111" in rows["torchserve: image"]
    assert "torch 2.13.0+cpu" in rows["torchserve: runtime (reported by the server)"]
    assert rows["kind: server and generator can contend"] == "yes"
    assert "2" in rows["kind: host CPUs"]


def _wires() -> dict:
    from helm_util import SUBCHARTS, wire_values  # MERGE: registry.get(name).wire.values()

    return {s: wire_values(s) for s in SUBCHARTS}


def test_addresses_point_grpc_at_the_headless_services() -> None:
    exp = load_experiment(QUICK)
    got = dict(kp.addresses(exp, "servecmp", "servecmp", wires=_wires()))
    assert got["torchserve-grpc-bytes"] == "servecmp-torchserve-grpc.servecmp.svc:7070"
    assert got["tfserving-rest-json"] == "servecmp-tfserving.servecmp.svc:8501"
    assert "pytorch-inprocess" not in got
    only = kp.addresses(exp, "r", "ns", ["tfserving-grpc-tensorproto"], _wires())
    assert list(dict(only)) == ["tfserving-grpc-tensorproto"]


def test_addresses_follow_the_wire_and_refuse_a_server_without_one() -> None:
    exp = load_experiment(QUICK)
    wires = _wires()
    wires["tfserving"]["ports"]["http"]["port"] = 9501
    got = dict(kp.addresses(exp, "servecmp", "servecmp", wires=wires))
    assert (
        got["tfserving-rest-json"] == "servecmp-tfserving.servecmp.svc:9501"
    )  # not a copy of 8501
    del wires["torchserve"]
    with pytest.raises(
        ValueError, match=r"torchserve-rest-json: no generated wire values for server 'torchserve'"
    ):
        kp.addresses(exp, "servecmp", "servecmp", wires=wires)
