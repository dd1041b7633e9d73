"""The cluster path of ``servecmp tune`` (``--cluster``): each candidate is rolled out to the
running kind cluster (``make kind-up``) with ``helm upgrade --reuse-values`` carrying the
candidate's generated configs and thread environment (servecmp/cluster/helmvalues.py, the same files
``make kind-up`` installs; the subcharts' ``checksum/config`` annotation restarts the server pods
on a changed config), waited for with ``servecmp.cluster.cluster wait`` (stops at a stuck
pod), then measured by the in-cluster step engine (``scripts/kind-load.sh``: a Job on the loadgen
node running ``servecmp steps``, its steps merged into a normal run directory). Slower than the
local path (a rollout per candidate), no early stop (the Job runs the whole profile).

The in-process baselines have no cluster form: tune them locally.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from servecmp.experiment import Experiment
from servecmp.results.store import RunStore
from servecmp.tune.measure import finish, level_of, start_measurement, target_for
from servecmp.tune.space import Candidate, TuneError, variant
from servecmp.tune.store import Measurement, Stage

ROOT = Path(__file__).resolve().parents[2]


def _env_file(root: Path) -> dict[str, str]:
    out = {}
    for line in (root / "deploy" / "kind" / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def helm_binary(root: Path) -> str | None:
    """As scripts/kind-lib.sh: SERVECMP_HELM, else .tools/bin/helm, else helm on PATH."""
    if os.environ.get("SERVECMP_HELM"):
        return os.environ["SERVECMP_HELM"]
    tool = root / ".tools" / "bin" / "helm"
    return str(tool) if tool.is_file() else shutil.which("helm")


def unavailable_reason() -> str | None:
    """Why the cluster path cannot run here (None: kind, kubectl and helm exist)."""
    missing = [b for b in ("kind", "kubectl", "docker") if shutil.which(b) is None]
    if helm_binary(ROOT) is None:
        missing.append("helm")
    if missing:
        return f"the cluster path needs {', '.join(missing)} on PATH (and a cluster from `make kind-up`)"
    return None


class ClusterMeasurer:
    def __init__(
        self, exp: Experiment, tune_dir: Path, root: Path = ROOT, python: str | None = None
    ) -> None:
        self.exp = exp
        self.tune_dir = tune_dir
        self.root = root
        self.python = (
            python or os.environ.get("SERVECMP_PYTHON") or str(root / ".venv" / "bin" / "python")
        )
        env = _env_file(root)
        self.release = env["SERVECMP_RELEASE"]
        self.namespace = env["SERVECMP_NAMESPACE"]
        self.context = f"kind-{env['KIND_CLUSTER_NAME']}"

    def _run(self, cmd: list[str], what: str) -> str:
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise TuneError(
                f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}"
            )
        return proc.stdout + proc.stderr

    def rollout(self, exp: Experiment, cand_dir: Path) -> None:
        from servecmp.cluster.helmvalues import set_file_args, write_helm_inputs

        config_dir, values = write_helm_inputs(exp, cand_dir / "helm")
        helm = helm_binary(self.root)
        if helm is None:
            raise TuneError(
                "helm not found (SERVECMP_HELM, .tools/bin/helm or PATH): run make helm"
            )
        # --reuse-values keeps what kind-up set (image tags, monitoring release); the candidate's
        # values file and config files override the server settings only
        self._run(
            [
                helm,
                "upgrade",
                self.release,
                str(self.root / "helm" / "servecmp"),
                "--kube-context",
                self.context,
                "--namespace",
                self.namespace,
                "--reuse-values",
                "-f",
                str(values),
                *set_file_args(config_dir),
            ],
            "helm upgrade",
        )
        self._run(
            [
                self.python,
                "-m",
                "servecmp.cluster.cluster",
                "--context",
                self.context,
                "--namespace",
                self.namespace,
                "wait",
                "--timeout",
                "600",
            ],
            "rollout wait",
        )

    def measure(
        self,
        cand: Candidate,
        stage: Stage,
        rnd: int,
        incumbent: Measurement | None = None,
        level: str | None = None,
    ) -> Measurement:
        """The in-cluster Job runs the experiment's whole profile (``level`` is not narrowed here)."""
        exp = variant(self.exp, cand)
        target = target_for(exp, cand.server)
        if target.is_baseline:
            raise TuneError(
                f"{cand.server} is an in-process baseline: it has no cluster form (tune it locally)"
            )
        m = start_measurement(cand, target, stage, rnd)
        cand_dir = self.tune_dir / m.candidate_dir
        cand_dir.mkdir(parents=True, exist_ok=True)
        exp_file = cand_dir / "experiment.yaml"
        exp_file.write_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False))
        t0 = time.monotonic()
        self.rollout(exp, cand_dir)
        out = self._run(
            [
                "bash",
                str(self.root / "scripts" / "kind-load.sh"),
                str(exp_file),
                "--target",
                target.name,
            ],
            "in-cluster load (scripts/kind-load.sh)",
        )
        found = re.findall(r"results: (\S.*)$", out, flags=re.M)
        if not found:
            raise TuneError(f"scripts/kind-load.sh printed no results directory:\n{out[-1500:]}")
        run_dir = Path(found[-1].strip())
        (cand_dir / "run").write_text(str(run_dir) + "\n")  # where the steps are
        steps = [s for s in RunStore(run_dir).read_steps().steps if s.target == target.name]
        m.levels = [level_of(s, exp.load.slo_p99_ms) for s in steps]
        return finish(m, t0)
