"""Generated server configs: one source, parsed with TF Serving's protos, fair by construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from servecmp.configgen import GeneratedConfigs, Placement, render_all, write_configs
from servecmp.experiment import load_experiment, parse_experiment
from servecmp.servers.tfserving.config import flag_lines
from servecmp.servers.tfserving.protos import (
    parse_batching_config,
    parse_models_config,
    parse_monitoring_config,
)
from servecmp.servers.torchserve.config import parse_properties

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((ROOT / "loadtests" / "experiments").glob("*.yaml"))


def _exp(**over: object):
    data = {"name": "t", "targets": [{"server": "torchserve", "protocol": "rest"}]}
    data.update(over)
    return parse_experiment(data)


def _local() -> Placement:
    return Placement.local(
        {
            "torchserve": {"models": "/tmp/ms", "config": "/tmp/cfg/ts"},
            "tfserving": {"models": "/tmp/tfs", "config": "/tmp/cfg/tfs"},
            "kserve": {"models": "/tmp/ks", "config": "/tmp/cfg/ks"},
            "triton": {"models": "/tmp/tr", "config": "/tmp/cfg/tr"},
            "rayserve": {"models": "/tmp/rs", "config": "/tmp/cfg/rs"},
        },
        {
            "torchserve": {
                "rest": 18080,
                "management": 18081,
                "metrics": 18082,
                "grpc": 17070,
                "grpc-management": 17071,
            },
            "tfserving": {"grpc": 18500, "rest": 18501, "metrics": 18501},
            "kserve": {"rest": 18090, "grpc": 18091, "metrics": 18090},
            "triton": {"rest": 18100, "grpc": 18101, "metrics": 18102},
            "rayserve": {"rest": 18000, "grpc": 19000, "metrics": 18088},
        },
    )


def _tfs_flags(gen: GeneratedConfigs) -> list[str]:
    return flag_lines(gen.files["tfserving"])


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
@pytest.mark.parametrize("placement", [Placement.kubernetes(), _local()], ids=["k8s", "local"])
def test_tfserving_files_parse_with_official_protos(path: Path, placement: Placement) -> None:
    exp = load_experiment(path)
    files = render_all(exp, placement).files["tfserving"]
    models = parse_models_config(files["models.config"])
    (cfg,) = models.model_config_list.config
    assert cfg.name == exp.model
    assert cfg.base_path == f"{placement.path('tfserving', 'models')}/{exp.model}"
    assert cfg.model_platform == "tensorflow"
    mon = parse_monitoring_config(files["monitoring.config"])
    assert (
        mon.prometheus_config.enable
        and mon.prometheus_config.path == "/monitoring/prometheus/metrics"
    )
    batching = parse_batching_config(files["batching.config"])
    assert batching.max_batch_size.value == exp.tuning.batching.max_batch_size


def test_batching_policy_maps_to_both_servers() -> None:
    exp = _exp(
        tuning={
            "workers": 2,
            "batching": {"enabled": True, "max_batch_size": 16, "batch_timeout_ms": 7},
        }
    )
    gen = render_all(exp, Placement.kubernetes())
    props = parse_properties(gen.files["torchserve"]["config.properties"])
    import json

    model = json.loads(props["models"])["resnet"]["1.0"]
    assert (model["batchSize"], model["maxBatchDelay"]) == (16, 7)
    assert model["minWorkers"] == model["maxWorkers"] == 2
    b = parse_batching_config(gen.files["tfserving"]["batching.config"])
    assert (b.max_batch_size.value, b.batch_timeout_micros.value, b.num_batch_threads.value) == (
        16,
        7000,
        2,
    )
    flags = _tfs_flags(gen)
    assert "--enable_batching=true" in flags
    assert "--batching_parameters_file=/config/tfserving/batching.config" in flags


def test_batching_off_means_batch_size_one_and_no_flag() -> None:
    gen = render_all(_exp(), Placement.kubernetes())
    import json

    props = parse_properties(gen.files["torchserve"]["config.properties"])
    assert json.loads(props["models"])["resnet"]["1.0"]["batchSize"] == 1
    assert not any(f.startswith("--enable_batching") for f in _tfs_flags(gen))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_thread_budget_is_the_same_on_both_servers(workers: int) -> None:
    """TF's intra-op pool is process-wide (shared by all concurrent session runs): it gets the
    whole budget and inter-op = workers; TorchServe gets cpus / workers per worker."""
    exp = _exp(resources={"cpus": 4}, tuning={"workers": workers})
    gen = render_all(exp, Placement.kubernetes())
    flags = _tfs_flags(gen)
    assert "--tensorflow_intra_op_parallelism=4" in flags
    assert f"--tensorflow_inter_op_parallelism={workers}" in flags
    assert gen.env["tfserving"]["OMP_NUM_THREADS"] == "4"
    props = parse_properties(gen.files["torchserve"]["config.properties"])
    assert props["number_of_netty_threads"] == "4"
    assert props["default_workers_per_model"] == str(workers)
    per_worker = int(gen.env["torchserve"]["OMP_NUM_THREADS"])
    assert per_worker == 4 // workers and per_worker * workers == 4  # same total on both servers


def test_explicit_intra_op_threads_are_per_instance_on_both_servers() -> None:
    gen = render_all(
        _exp(resources={"cpus": 8}, tuning={"workers": 2, "intra_op_threads": 3}),
        Placement.kubernetes(),
    )
    assert "--tensorflow_intra_op_parallelism=6" in _tfs_flags(gen)
    assert gen.env["torchserve"]["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize(
    ("load", "cpus", "expected"),
    [
        ({"concurrency": [1]}, 1, 6),  # 1 I/O thread must not cap REST at 1
        ({"concurrency": [1, 4, 32]}, 2, 37),  # + 1 event-loop thread + 4 for probes
        ({"concurrency": [1]}, 4, 16),  # the server's own default, 4 x CPUs
        ({"profile": "open_loop", "rate": 50}, 1, 69),  # open loop: up to 64 in flight
    ],
)
def test_rest_api_threads_never_cap_the_measured_concurrency(
    load: dict[str, object], cpus: int, expected: int
) -> None:
    """http_server.cc (2.20.0): each REST request runs to completion on the pool, and metrics and
    model-status GETs share it: threads >= peak in-flight + a reserve, never the I/O count."""
    exp = _exp(resources={"cpus": cpus}, load=load)
    flags = _tfs_flags(render_all(exp, Placement.kubernetes()))
    assert f"--rest_api_num_threads={expected}" in flags
    assert expected > exp.io_threads


def test_tfserving_batch_size_counts_examples() -> None:
    """batching_session.h: a task's size is its 0th dimension, so B examples per request make
    TorchServe's batch of M requests M x B examples on TF Serving."""
    exp = _exp(
        payload={"batch_size": 4}, tuning={"batching": {"enabled": True, "max_batch_size": 8}}
    )
    gen = render_all(exp, Placement.kubernetes())
    assert (
        parse_batching_config(gen.files["tfserving"]["batching.config"]).max_batch_size.value == 32
    )
    props = parse_properties(gen.files["torchserve"]["config.properties"])
    import json

    assert json.loads(props["models"])["resnet"]["1.0"]["batchSize"] == 8


def test_a_batch_too_large_to_form_is_rejected_naming_the_fields() -> None:
    from servecmp.experiment import ExperimentError

    with pytest.raises(
        (ExperimentError, ValueError),
        match=r"payload\.batch_size \(8\) x tuning\.batching\.max_batch_size \(256\)",
    ):
        _exp(
            payload={"batch_size": 8}, tuning={"batching": {"enabled": True, "max_batch_size": 256}}
        )
    _exp(payload={"batch_size": 8}, tuning={"batching": {"enabled": False, "max_batch_size": 256}})


def test_local_placement_binds_loopback_and_uses_its_ports(tmp_path: Path) -> None:
    gen = render_all(_exp(), _local())
    props = parse_properties(gen.files["torchserve"]["config.properties"])
    assert props["inference_address"] == "http://127.0.0.1:18080"
    assert props["grpc_inference_address"] == "127.0.0.1"
    assert props["grpc_inference_port"] == "17070"
    assert props["disable_token_authorization"] == "true"
    assert props["metrics_mode"] == "prometheus"
    assert "--port=18500" in _tfs_flags(gen)
    dirs = write_configs(gen, tmp_path)
    assert (dirs["torchserve"] / "config.properties").read_text() == gen.files["torchserve"][
        "config.properties"
    ]
    assert "OMP_NUM_THREADS=1" in (dirs["tfserving"] / "env").read_text()


def test_malformed_tfserving_config_is_caught_by_the_proto_parser() -> None:
    from google.protobuf import text_format

    with pytest.raises(text_format.ParseError, match="max_batch_sise"):
        parse_batching_config("max_batch_sise { value: 3 }\n")
    with pytest.raises(text_format.ParseError):
        parse_models_config('model_config_list { config { nam: "x" } }')


def test_config_surface_counts_what_was_generated() -> None:
    from servecmp.configgen.surface import config_surface

    off = config_surface(render_all(_exp(), Placement.kubernetes()))
    on = config_surface(
        render_all(_exp(tuning={"batching": {"enabled": True}}), Placement.kubernetes())
    )
    ts, tfs = off["torchserve"], off["tfserving"]
    assert "metrics_mode" in ts.changed and "disable_token_authorization" in ts.changed
    assert "--rest_api_port" in tfs.changed
    # Batching adds a file and knobs on TF Serving; on TorchServe it only changes values.
    assert on["tfserving"].files == tfs.files + 1
    assert on["tfserving"].knobs_set > tfs.knobs_set
    assert on["torchserve"].files == ts.files
    assert 0 < ts.knobs_changed <= ts.knobs_set and 0 < tfs.knobs_changed <= tfs.knobs_set


def test_config_surface_does_not_count_values_equal_to_the_defaults() -> None:
    from servecmp.configgen.surface import config_surface

    tfs = config_surface(render_all(_exp(), Placement.kubernetes()))["tfserving"]
    # --port=8500, the latest-1 version policy and the default metrics path are defaults.
    assert "--port" not in tfs.changed
    assert "models.config:model_version_policy" not in tfs.changed
    assert "monitoring.config:path" not in tfs.changed
    assert "monitoring.config:enable" in tfs.changed
    assert tfs.knobs_changed == len(tfs.changed) < tfs.knobs_set


def test_local_placement_gives_every_socket_its_own_free_port() -> None:
    """Placement.local without ports: one free loopback port per socket of every server; a port
    seen in two roles (TF Serving's metrics on its REST port) stays one socket."""
    pl = Placement.local(
        {
            "torchserve": {"models": "/m", "config": "/c/ts"},
            "tfserving": {"models": "/t", "config": "/c/tfs"},
            "kserve": {"models": "/k", "config": "/c/ks"},
            "triton": {"models": "/tr", "config": "/c/tr"},
            "rayserve": {"models": "/r", "config": "/c/rs"},
        }
    )
    assert pl.bind_host == "127.0.0.1"
    ts, tfs = pl.ports["torchserve"], pl.ports["tfserving"]
    assert set(ts) == {"rest", "grpc", "management", "grpc-management", "metrics"}
    assert tfs["metrics"] == tfs["rest"] != tfs["grpc"]
    ks = pl.ports["kserve"]
    assert ks["metrics"] == ks["rest"] != ks["grpc"]  # KServe's /metrics is on its HTTP port
    sockets = [*ts.values(), tfs["rest"], tfs["grpc"], ks["rest"], ks["grpc"]]
    assert len(set(sockets)) == len(sockets) and all(p > 0 for p in sockets)
    with pytest.raises(ValueError, match=r"no local paths for server.*tfserving"):
        Placement.local(
            {
                "torchserve": {"models": "/m", "config": "/c/ts"},
                "kserve": {"models": "/k", "config": "/c/ks"},
            }
        )


def test_kubernetes_placement_takes_the_wire_numbers_and_paths() -> None:
    from servecmp.servers import registry

    k8s = Placement.kubernetes()
    for a in registry.servers():
        assert a.wire is not None
        assert k8s.ports[a.name] == {p.role: p.number for p in a.wire.ports}
        assert k8s.paths[a.name] == a.wire.paths
    with pytest.raises(KeyError, match="no 'rest' port for server 'nope'"):
        k8s.port("nope", "rest")
