"""What ``servecmp export``, ``servecmp parity`` and ``servecmp golden`` do; each function returns
a process exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from servecmp.models.registry import DEFAULT_SEED, get_model, model_names


def _names(models: Sequence[str] | None) -> list[str]:
    names = list(models) if models else model_names()
    for n in names:
        get_model(n)  # fail before any work, with the allowed names
    return names


def export_command(
    out: str | Path,
    models: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    versions: Sequence[int] = (1,),
    port: bool = True,
) -> int:
    """Export every model/version for every server; each artifact is checked against PyTorch
    before it is kept (a refused export prints the parity table and returns 1). ``port=False``
    (``--no-port``) skips the ONNX -> TensorFlow port: no SavedModel unless a TF twin exists."""
    from servecmp.models.export import NO_PORT_FLAG, ExportError, export_model, seed_for_version

    ok = True
    for name in _names(models):
        for version in versions:
            vseed = seed_for_version(seed, version)
            try:
                rec = export_model(
                    name, out, seed=vseed, version=version, skip_port="" if port else NO_PORT_FLAG
                )
            except ExportError as err:
                print(err)
                ok = False
                continue
            for server, p in rec.servers.items():
                print(
                    f"{rec.model} v{version} {server}: {p.artifact} ({p.bytes} bytes, "
                    f"{p.seconds:.1f} s)"
                )
            for server, why in rec.unavailable.items():
                print(f"{rec.model} v{version} {server}: unavailable: {why}")
            for row in rec.parity:
                print(f"  parity: {_row(row)}")
    return 0 if ok else 1


def _row(row: dict[str, object]) -> str:
    from servecmp.models.verify import ArtifactParity

    return ArtifactParity(**row).summary()  # type: ignore[arg-type]


def parity_command(
    models: Sequence[str] | None = None, seed: int = DEFAULT_SEED, n: int = 32
) -> int:
    from servecmp.models.parity import check_parity

    ok = True
    for name in _names(models):
        report = check_parity(name, seed=seed, n=n)
        print(report.summary())
        ok &= report.passed
    return 0 if ok else 1


def golden_command(models: Sequence[str] | None = None, seed: int = DEFAULT_SEED) -> int:
    from servecmp.models.parity import write_golden

    for name in _names(models):
        print(f"wrote {write_golden(name, seed)}")
    return 0
