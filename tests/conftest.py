"""Shared pytest fixtures. Each owner keeps a clearly delimited section."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# test_registry / test_registry_with_kserve: the registry pointed at test adapters (presentation
# tests: report, console, rules, dashboards, scrape config)
pytest_plugins = ["adapters_for_tests"]


def pytest_configure(config: pytest.Config) -> None:
    """Markers of tests that start no server but cost seconds each: `make test` runs them,
    `make test-fast` leaves them out (docs/testing.md)."""
    config.addinivalue_line(
        "markers", "load: sends real bounded load (step processes, Locust) to local test doubles"
    )
    config.addinivalue_line(
        "markers",
        "heavy: spawns interpreters that import the ML stack, build the wheel or run shims",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test parametrized over the full-size model (``name="resnet"``: a 1.2 M-parameter CNN
    built, traced and exported, seconds each) is heavy; its ``tiny`` twin keeps the same code
    path in `make test-fast`."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("name") == "resnet":
            item.add_marker(pytest.mark.heavy)


# ==== servecmp.models fixtures (owner: models/) ===================================================


@pytest.fixture(scope="session")
def model_export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model exports")  # a space: recorded commands must be quoted


@pytest.fixture(scope="session")
def exported_model(model_export_root: Path) -> Callable[[str], Path]:
    """``exported_model(name)`` exports ``name`` (v1, default seed) once per session; returns the
    export root (pass it to ``servecmp.models.export.artifacts``)."""
    from servecmp.models.export import artifacts, export_model

    def export(name: str) -> Path:
        if not artifacts(name, model_export_root).export_json.is_file():
            export_model(name, model_export_root)
        return model_export_root

    return export


# ==== end servecmp.models fixtures ================================================================


# ==== real local servers, started by the project's own runtime (servecmp/run) =====================


def _no_java_or_torchserve() -> str | None:
    from servecmp.servers.torchserve.local import TorchServeServer

    return TorchServeServer.availability()


@pytest.fixture(scope="module")
def local_torchserve(
    exported_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
):
    """``local_torchserve(model, **experiment_fields)`` starts a REAL TorchServe from the
    generated config.properties (servecmp/configgen) with the exported .mar, waits until a worker
    is READY, and stops it (whole process group) at module end; asserts nothing survives."""
    import psutil

    from servecmp.run.standalone import start_server

    reason = _no_java_or_torchserve()
    if reason:
        pytest.skip(reason)
    started: list[Any] = []

    def start(model: str, **fields: object) -> Any:
        server = start_server(
            "torchserve",
            model,
            tmp_path_factory.mktemp(f"ts-{model}"),
            exported_model(model),
            **fields,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        tree = server.process.tree() if server.process else []
        server.stop()
        left = [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"TorchServe processes survived stop(): {left}"


# ==== end real local servers ======================================================================


# ==== one export of the tiny model for every `servecmp run` in the session (owner: tests/) =======


@pytest.fixture(scope="session")
def tiny_run_exports(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``tiny_run_exports(dest)`` fills ``dest`` with the tiny model's exports as a run makes them
    (v1 + v2, seed 1234) and returns it; pass it as ``artifacts_root``/``--artifacts``. The export
    (≈10 s of CPU) runs once per session; each caller gets its own copy, so paths stay under its
    tmp dir and a run that modifies its artifacts touches no other test's."""
    made: list[Path] = []

    def copy_to(dest: Path) -> Path:
        if not made:
            from servecmp.run.orchestrate import ensure_artifacts

            made.append(tmp_path_factory.mktemp("tiny-run-exports"))
            ensure_artifacts("tiny", made[0], 1234)
        shutil.copytree(made[0], dest, dirs_exist_ok=True)
        return dest

    return copy_to


# ==== end one export of the tiny model ============================================================
