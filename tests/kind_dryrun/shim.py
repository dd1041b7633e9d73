"""Test-only stand-in for SERVECMP_PYTHON in the kind scripts' dry run (tests/test_kind_scripts.py).

Every ``python -m servecmp.cluster.<mod> ...`` / ``python -m servecmp.cli ...`` the scripts
run goes through the module's REAL argument parser (a wrong option fails the dry run). Commands
that need a cluster or a long export only have their arguments checked and leave a minimal
output; every other command (preflight, helmvalues, artifacts staging, image tags, manifests,
addresses, extract, merge, friction) runs for real. Nothing here is ever a server.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import shlex
import sys
from pathlib import Path

# (module, subcommand) that talk to a cluster or take minutes: arguments checked only
PARSE_ONLY = {
    ("servecmp.cli", "export"),
    ("servecmp.cli", "report"),
    ("servecmp.cluster.cluster", "wait"),
    ("servecmp.cluster.cluster", "wait-job"),
    ("servecmp.cluster.cluster", "wait-started"),
    ("servecmp.cluster.cluster", "report"),
    ("servecmp.cluster.cluster", "recover"),
    ("servecmp.cluster.provenance", "meta"),
    ("servecmp.cluster.images", "load"),
}


def _log(entry: list[str]) -> None:
    with open(os.environ["DRYRUN_LOG"], "a") as fh:
        fh.write(shlex.join(["python", *entry]) + "\n")


def _side_effects(module: str, sub: str, ns: object) -> None:
    a = vars(ns)
    if (module, sub) == ("servecmp.cli", "export"):
        import zipfile

        for model in a["model"] or ["resnet"]:
            root = Path(a["out"]) / model
            (root / "torchserve").mkdir(parents=True, exist_ok=True)
            for name, body in ((f"{model}.mar", "dry-run v1"), (f"{model}_v2.mar", "dry-run v2")):
                with zipfile.ZipFile(root / "torchserve" / name, "w") as zf:  # a .mar is a zip
                    zf.writestr("model.pt", body)
            for v in ("1", "2"):
                (root / "tfserving" / model / v).mkdir(parents=True, exist_ok=True)
                (root / "tfserving" / model / v / "saved_model.pb").write_bytes(v.encode())
    elif (module, sub) == ("servecmp.cluster.cluster", "wait-started"):
        # returns once the Job's container has started (the fake kubectl's pod state)
        (Path(os.environ["DRYRUN_LOG"]).parent / "pod-started").touch()
    elif (module, sub) == ("servecmp.cluster.cluster", "report"):
        if a.get("out"):
            Path(a["out"]).parent.mkdir(parents=True, exist_ok=True)
            Path(a["out"]).write_text(json.dumps({"namespace": a["namespace"], "servers": {}}))
    elif (module, sub) == ("servecmp.cluster.provenance", "meta"):
        from servecmp.experiment import load_experiment
        from servecmp.results.provenance import build_meta
        from servecmp.results.store import RunStore

        RunStore(a["run_dir"]).write_meta(build_meta(load_experiment(a["experiment"]), a["run_id"]))


def main() -> None:
    args = sys.argv[1:]
    _log(args)
    if args[0] == "-c":
        sys.argv = ["-c", *args[2:]]
        exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        return
    assert args[0] == "-m", args
    module, rest = args[1], args[2:]
    parser = importlib.import_module(module).build_parser()
    ns = parser.parse_args(rest)  # SystemExit(2) on a wrong option: the dry run fails
    sub = getattr(ns, "cmd", None) or getattr(ns, "command", None)
    if (module, sub) in PARSE_ONLY:
        _side_effects(module, str(sub), ns)
        return
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
