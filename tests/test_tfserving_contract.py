"""Every flag we generate is one tensorflow_model_server 2.20.0 knows, and the double holds us to
it: it refuses other flags and serves Prometheus metrics only when the monitoring config enables
them. The flag names are stored in tests/data/tfserving_2.20.0_flags.txt, read from
tensorflow/serving tag 2.20.0 tensorflow_serving/model_servers/main.cc (``flag_list``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from doubles.tiny_artifacts import TinyWeights, write_savedmodel

from servecmp.configgen import Placement, render_all
from servecmp.experiment import parse_experiment
from servecmp.servers import registry
from servecmp.servers.tfserving import config
from servecmp.servers.tfserving.config import flag_lines

DATA = Path(__file__).resolve().parent / "data" / "tfserving_2.20.0_flags.txt"
DOUBLE = Path(__file__).resolve().parent / "doubles" / "tfserving_double.py"


def _names() -> set[str]:
    return {
        ln.strip() for ln in DATA.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    }


def test_the_flag_list_names_its_source_and_the_flags_we_rely_on() -> None:
    header = DATA.read_text().splitlines()[:3]
    assert any("tensorflow_serving/model_servers/main.cc" in h and "2.20.0" in h for h in header)
    names = _names()
    assert len(names) == 48  # main.cc 2.20.0: 48 tensorflow::Flag entries
    assert {
        "port",
        "rest_api_port",
        "rest_api_num_threads",
        "grpc_max_threads",
        "model_config_file",
        "monitoring_config_file",
        "enable_batching",
        "batching_parameters_file",
    } <= names


@pytest.mark.parametrize("batching", [False, True])
@pytest.mark.parametrize("placement", ["kubernetes", "local"])
def test_every_generated_flag_exists_in_tensorflow_model_server(
    batching: bool, placement: str
) -> None:
    exp = parse_experiment(
        {
            "name": "c",
            "targets": [{"server": "tfserving", "protocol": "grpc"}],
            "resources": {"cpus": 2},
            "tuning": {"batching": {"enabled": batching}},
        }
    )
    pl = (
        Placement.kubernetes()
        if placement == "kubernetes"
        else Placement.local(
            {
                s: {"models": f"/m/{s}", "config": f"/c/{s}"}
                for s in (a.name for a in registry.servers())
            }
        )
    )
    flags = flag_lines(render_all(exp, pl).files["tfserving"])
    names = _names()
    for flag in flags:
        assert flag.startswith("--") and "=" in flag, flag
        assert flag[2:].split("=", 1)[0] in names, (
            f"{flag} is not a tensorflow_model_server 2.20.0 flag"
        )
    assert set(config.FLAG_DEFAULTS) >= {f.split("=", 1)[0] for f in flags}


@pytest.mark.heavy
def test_the_double_refuses_an_unknown_flag_like_the_server_reports_it(tmp_path: Path) -> None:
    """main.cc prints "unknown argument: <arg>" and the usage; the double then exits non-zero
    (the real server would go on with the flag ignored, which no test must rely on)."""
    out = subprocess.run(
        [sys.executable, str(DOUBLE), "--port=1", "--rest_api_threads=4"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "unknown argument: --rest_api_threads=4" in out.stdout
    assert "--rest_api_num_threads" in out.stdout  # the usage lists the real flags


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tfs-contract") / "tiny"
    write_savedmodel(TinyWeights.seeded(), root / "1")
    return root


@pytest.mark.parametrize(
    ("monitoring", "served"),
    [
        (None, None),  # no --monitoring_config_file: no metrics handler
        ("prometheus_config {\n  enable: false\n}\n", None),
        ('prometheus_config {\n  enable: true\n  path: "/m/p"\n}\n', "/m/p"),
        ("prometheus_config {\n  enable: true\n}\n", config.METRICS_PATH),  # kPrometheusPath
        (config.monitoring_config(), config.METRICS_PATH),  # what we generate
    ],
)
def test_metrics_are_served_only_where_the_monitoring_config_enables_them(
    base: Path, tmp_path: Path, monitoring: str | None, served: str | None
) -> None:
    from doubles.tfserving_double import TFServingDouble, _Container, _metrics_path

    flags: dict[str, Any] = {}
    if monitoring is not None:
        (tmp_path / "monitoring.config").write_text(monitoring)
        flags["monitoring_config_file"] = str(tmp_path / "monitoring.config")
    path = _metrics_path(_Container(None), flags)
    assert path == served
    with TFServingDouble({"tiny": base}, metrics_path=path) as d:
        for candidate in {config.METRICS_PATH, "/m/p"}:
            r = requests.get(f"http://{d.rest_address}{candidate}", timeout=30)
            assert r.status_code == (200 if candidate == served else 404), candidate
