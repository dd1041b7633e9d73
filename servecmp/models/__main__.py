"""``python -m servecmp.models {export,parity,golden}``.

The ``*_command`` functions return a process exit code; ``servecmp export`` / ``servecmp parity``
call them directly.
"""

from __future__ import annotations

import argparse
import sys
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
    """Export every model/version for both servers, then check the SavedModel against PyTorch."""
    import tensorflow as tf

    from servecmp.models.export import artifacts, export_model, seed_for_version
    from servecmp.models.parity import check_parity

    ok = True
    for name in _names(models):
        for version in versions:
            vseed = seed_for_version(seed, version)
            rec = export_model(name, out, seed=vseed, version=version)
            for p in (rec.torchserve, rec.tfserving):
                print(f"{name} v{version} {p.server}: {p.artifact} ({p.bytes} bytes, {p.seconds:.1f} s)")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m servecmp.models", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models", nargs="+", choices=model_names(), help="default: all")
    common.add_argument("--seed", type=int, default=DEFAULT_SEED, help="weights seed (default %(default)s)")
    e = sub.add_parser("export", parents=[common], help="package for TorchServe + TF Serving, then check parity")
    e.add_argument("--out", type=Path, default=Path("build/models"), help="default %(default)s")
    e.add_argument("--versions", nargs="+", type=int, default=[1],
                   help="model versions; version v uses seed+v-1 (default: 1)")
    q = sub.add_parser("parity", parents=[common], help="PyTorch vs TF parity check")
    q.add_argument("-n", type=int, default=32, help="random inputs besides the golden ones")
    sub.add_parser("golden", parents=[common], help="regenerate servecmp/models/golden/<name>.npz")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "export":
        return export_command(args.out, args.models, args.seed, args.versions)
    if args.cmd == "parity":
        return parity_command(args.models, args.seed, args.n)
    return golden_command(args.models, args.seed)


if __name__ == "__main__":
    sys.exit(main())
