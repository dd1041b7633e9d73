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
) -> int:
    """Export every model/version (.mar and SavedModel), then check the SavedModel against PyTorch."""
    import tensorflow as tf

    from servecmp.models.export import artifacts, export_model, seed_for_version
    from servecmp.models.parity import check_parity

    ok = True
    for name in _names(models):
        for version in versions:
            vseed = seed_for_version(seed, version)
            rec = export_model(name, out, seed=vseed, version=version)
            for p in (rec.torchserve, rec.tfserving):
                print(
                    f"{name} v{version} {p.server}: {p.artifact} ({p.bytes} bytes, {p.seconds:.1f} s)"
                )
            # Parity against what TF Serving will load, not just the in-memory mirror.
            saved = tf.saved_model.load(str(artifacts(name, out, version).savedmodel))
            report = check_parity(name, seed=vseed, tf_model=saved)
            print(f"  parity (SavedModel): {report.summary()}")
            ok &= report.passed
    return 0 if ok else 1


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
