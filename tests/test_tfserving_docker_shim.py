"""The test-only `docker` (tests/shims/docker) holds our Docker mode to the engine's limits, so a
`docker run` line that only works on the happy path fails here:

- the container's process sees only the image's ENV and the ``-e`` variables (so the watchdog's
  environment-token sweep cannot see it);
- without ``--init`` the server is PID 1 and ignores SIGTERM (tensorflow_model_server sets no
  handler: model_servers/main.cc, server.cc at 2.20.0); with ``--init`` SIGTERM ends it;
- only mounted paths exist inside, only published ports answer outside;
- a container over ``--memory`` is OOM-killed (``docker run`` exits 137);
- an image not pulled yet costs pull time at ``run``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from doubles.tiny_artifacts import TinyWeights, write_savedmodel

from servecmp.servers.tfserving import config
from servecmp.servers.tfserving.local import IMAGE_BINARY, pinned_image

pytestmark = [pytest.mark.slow]

SHIMS = Path(__file__).resolve().parent / "shims"
DOCKER = str(SHIMS / "docker")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(
        os.environ,
        DOCKER_SHIM_STATE=str(tmp_path / "state"),
        DOCKER_SHIM_PYTHON=sys.executable,
        DOCKER_SHIM_PULL_S="0",
    )
    yield env
    ps = subprocess.run(
        [DOCKER, "ps", "-a", "-q"], env=env, capture_output=True, text=True, timeout=60
    )
    for cid in ps.stdout.split():
        subprocess.run([DOCKER, "rm", "-f", cid], env=env, capture_output=True, timeout=60)


def _layout(tmp_path: Path) -> tuple[Path, Path]:
    models, cfg = tmp_path / "models", tmp_path / "cfg"
    write_savedmodel(TinyWeights.seeded(), models / "tiny" / "1")
    cfg.mkdir()
    (cfg / "models.config").write_text(
        f'model_config_list {{ config {{ name: "tiny" base_path: "{models}/tiny" '
        'model_platform: "tensorflow" } }\n'
    )
    (cfg / "monitoring.config").write_text(config.monitoring_config())
    return models, cfg


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict[str, str], name: str, *opts: str, flags: list[str]) -> subprocess.Popen[bytes]:
    argv = [
        DOCKER,
        "run",
        "--rm",
        "--name",
        name,
        *opts,
        "--entrypoint",
        IMAGE_BINARY,
        pinned_image(),
        *flags,
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _pid(env: dict[str, str], name: str) -> int:
    out = subprocess.run(
        [DOCKER, "inspect", "-f", "{{.State.Pid}}", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return int(out.stdout.strip() or 0)


def _serving(url: str, client: subprocess.Popen[bytes], timeout_s: float = 240) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and client.poll() is None:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _server_pid(root: int) -> int:
    """The double's pid: the container's main process, or its child under --init."""
    kids = Path(f"/proc/{root}/task/{root}/children")
    child = kids.read_text().split() if kids.is_file() else []
    return int(child[0]) if child else root


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("init", [False, True])
def test_pid1_env_mounts_and_ports(engine: dict[str, str], tmp_path: Path, init: bool) -> None:
    models, cfg = _layout(tmp_path)
    rest, grpc_port = _free_port(), _free_port()
    token = uuid.uuid4().hex
    env = dict(engine, SERVECMP_RUN_TOKEN=token)  # the client's environment, not the container's
    name = f"c-{init}"
    client = _run(
        env,
        name,
        *(["--init"] if init else []),
        "-p",
        f"127.0.0.1:{rest}:{rest}",
        "-v",
        f"{models}:{models}:ro",
        "-v",
        f"{cfg}:{cfg}:ro",
        "-e",
        "OMP_NUM_THREADS=1",
        flags=[
            f"--port={grpc_port}",
            f"--rest_api_port={rest}",
            f"--model_config_file={cfg}/models.config",
            f"--monitoring_config_file={cfg}/monitoring.config",
        ],
    )
    try:
        assert _serving(f"http://127.0.0.1:{rest}/v1/models/tiny", client), client.stderr
        server = _server_pid(_pid(env, name))
        environ = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
        assert b"OMP_NUM_THREADS=1" in environ and b"MODEL_BASE_PATH=/models" in environ
        assert not any(e.startswith(b"SERVECMP_RUN_TOKEN=") for e in environ)
        assert not any(e.startswith(b"DOCKER_SHIM_STATE=") for e in environ)
        # The gRPC port was not published: nothing answers on it from the host.
        with pytest.raises(requests.RequestException):
            requests.get(f"http://127.0.0.1:{grpc_port}/", timeout=2)
        client.send_signal(signal.SIGTERM)  # docker run proxies it to the container's PID 1
        if init:
            assert _gone(server, 60) and client.wait(timeout=60) == 128 + signal.SIGTERM
        else:
            assert not _gone(server, 2.0), "PID 1 without a SIGTERM handler must ignore SIGTERM"
            assert client.poll() is None
    finally:
        subprocess.run([DOCKER, "rm", "-f", name], env=engine, capture_output=True, timeout=60)
        client.wait(timeout=60)


def test_an_unmounted_config_is_missing_inside_the_container(
    engine: dict[str, str], tmp_path: Path
) -> None:
    models, cfg = _layout(tmp_path)
    client = _run(
        engine,
        "nomount",
        "-v",
        f"{models}:{models}:ro",
        flags=["--port=1", f"--model_config_file={cfg}/models.config"],
    )
    assert client.wait(timeout=300) == 255
    log = (tmp_path / "state" / "nomount.log").read_text()
    assert "Failed to start server" in log and "models.config" in log


def test_a_container_over_its_memory_limit_is_oom_killed(
    engine: dict[str, str], tmp_path: Path
) -> None:
    models, cfg = _layout(tmp_path)
    client = _run(
        engine,
        "small",
        "-v",
        f"{models}:{models}:ro",
        "-v",
        f"{cfg}:{cfg}:ro",
        "--memory=64m",
        flags=["--port=1", f"--model_config_file={cfg}/models.config"],
    )
    assert client.wait(timeout=300) == 137  # importing TensorFlow alone needs more than 64 MiB
    events = (tmp_path / "state" / "events.jsonl").read_text()
    assert '"oom"' in events and '"small"' in events


def test_an_image_not_pulled_yet_is_pulled_by_run(engine: dict[str, str], tmp_path: Path) -> None:
    env = dict(engine, DOCKER_SHIM_PULL_S="1.5")
    image = pinned_image()
    assert (
        subprocess.run(
            [DOCKER, "image", "inspect", image], env=env, capture_output=True, timeout=60
        ).returncode
        == 1
    )
    t0 = time.monotonic()
    client = _run(env, "pulls", flags=["--version"])
    assert client.wait(timeout=300) == 0
    assert time.monotonic() - t0 >= 1.5
    assert b"Unable to find image" in (client.stderr.read() if client.stderr else b"")
    assert (
        subprocess.run(
            [DOCKER, "image", "inspect", image], env=env, capture_output=True, timeout=60
        ).returncode
        == 0
    )
