"""Shared pytest fixtures. Each owner keeps a clearly delimited section."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# ==== servecmp.models fixtures (owner: models/) ===================================================


@pytest.fixture(scope="session")
def model_export_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-exports")


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
