"""``servecmp kind up|load|down`` as library functions: :func:`up`, :func:`load`, :func:`down`.

The shell scripts (scripts/kind-*.sh) only check prerequisites (docker, kind, helm, kubectl and
their versions) and call these through the CLI. Everything else happens here, reusing the kind
modules: preflight (does it fit), helmvalues (generated configs and values, the servers' `wire`
included), artifacts (the measured version only), images (content tags, node-scoped loads),
cluster (waits that fail fast on a stuck pod, measurements), provenance and loadgen.

External tools (docker, kind, kubectl, helm) run through :class:`Ops`; our own modules that talk
to a cluster (waits, report, recover, provenance meta) and the long export run as
``$SERVECMP_PYTHON -m ...`` subprocesses, so a dry run (tests/test_kind_scripts.py, fakes on PATH
and a parse-only Python shim) exercises this very flow without a cluster. Pure steps run
in-process.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from servecmp.cluster import KIND_DIR, ROOT

# The checkout: the working directory when it is one (scripts and make run there; a copy of the
# checkout uses its own files), else the one this module was installed from (editable install).
ENGINES = ("steps", "locust")
_logger = logging.getLogger(__name__)
LOCUST_OPTIONS = ("duration", "users", "workers", "locustfile")


class KindError(RuntimeError):
    """A step of the kind flow failed; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    """Pins and names of the kind path (deploy/kind/versions.env, also sourced by the scripts)."""

    cluster: str
    node_image: str
    kps_chart_version: str
    kps_release: str
    kps_namespace: str
    release: str
    namespace: str
    grafana_host_port: str
    prometheus_host_port: str

    @classmethod
    def load(cls, path: Path = KIND_DIR / "versions.env") -> Settings:
        env: dict[str, str] = {}
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
        return cls(
            cluster=env["KIND_CLUSTER_NAME"],
            node_image=env["KIND_NODE_IMAGE"],
            kps_chart_version=env["KPS_CHART_VERSION"],
            kps_release=env["KPS_RELEASE"],
            kps_namespace=env["KPS_NAMESPACE"],
            release=env["SERVECMP_RELEASE"],
            namespace=env["SERVECMP_NAMESPACE"],
            grafana_host_port=env["GRAFANA_HOST_PORT"],
            prometheus_host_port=env["PROMETHEUS_HOST_PORT"],
        )

    @property
    def context(self) -> str:
        return f"kind-{self.cluster}"


@dataclass
class Ops:
    """How commands reach the outside: external tools and our own cluster-facing modules."""

    root: Path = field(
        default_factory=lambda: Path.cwd() if (Path.cwd() / "helm" / "servecmp").is_dir() else ROOT
    )
    helm: str = field(default_factory=lambda: os.environ.get("SERVECMP_HELM") or _default_helm())
    python: str = field(default_factory=lambda: os.environ.get("SERVECMP_PYTHON") or sys.executable)
    quiet: bool = False

    def log(self, msg: str) -> None:
        if not self.quiet:
            _logger.info(msg)

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        capture: bool = False,
        stdin: str | None = None,
        stdout: Any = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(cmd),
            cwd=self.root,
            text=True,
            input=stdin,
            stdout=stdout if stdout is not None else (subprocess.PIPE if capture else None),
            stderr=subprocess.PIPE if capture else None,
        )
        if check and proc.returncode != 0:
            detail = f":\n{proc.stderr.strip()}" if capture and proc.stderr else ""
            raise KindError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}){detail}")
        return proc

    def module(
        self,
        module: str,
        *args: str,
        check: bool = True,
        capture: bool = False,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``$SERVECMP_PYTHON -m servecmp.<module> ...``."""
        return self.run(
            [self.python, "-m", f"servecmp.{module}", *args],
            check=check,
            capture=capture,
            stdin=stdin,
        )

    def kubectl(
        self, settings: Settings, *args: str, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", "--context", settings.context, *args], **kw)

    @property
    def kind_dir(self) -> Path:
        return self.root / "deploy" / "kind"

    @property
    def chart(self) -> Path:
        return self.root / "helm" / "servecmp"


def _default_helm() -> str:
    local = ROOT / ".tools" / "bin" / "helm"
    return str(local) if os.access(local, os.X_OK) else "helm"


# ---- pieces (pure or in-process) ---------------------------------------------------------------
def kind_config(kind_dir: Path, build: Path) -> Path:
    """deploy/kind/kind-config.yaml with this checkout's absolute artifacts path in extraMounts
    (through YAML, not sed: a checkout path with '#', '&' or ': ' broke the substitution)."""
    cfg = yaml.safe_load((kind_dir / "kind-config.yaml").read_text())
    for node in cfg["nodes"]:
        for m in node.get("extraMounts") or []:
            if m["hostPath"] == "build/kind/artifacts":
                m["hostPath"] = str((build / "artifacts").resolve())
    out = build / "kind-config.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def enabled_charts(chart: Path, values: Mapping[str, Any]) -> list[str]:
    """Server subcharts the release deploys: the generated values over the chart's defaults."""
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    out = []
    for name in sorted(
        p.name for p in (chart / "charts").iterdir() if (p / "values.yaml").is_file()
    ):
        if name not in defaults or not isinstance(defaults[name], dict):
            continue  # the library chart
        on = (values.get(name) or {}).get("enabled", defaults[name].get("enabled", False))
        if on:
            out.append(name)
    return out


def local_image(chart: str, root: Path) -> tuple[str, str] | None:
    """(repository, content tag) of a server image built here: a server whose chart has a
    ``deploy/kind/<chart>.Dockerfile`` (TorchServe, KServe) is built from the project's pins;
    any other (TF Serving) is a registry image (:func:`registry_image`)."""
    from servecmp.cluster import images

    dockerfile = root / "deploy" / "kind" / f"{chart}.Dockerfile"
    if not dockerfile.is_file():
        return None
    image = yaml.safe_load(
        (root / "helm" / "servecmp" / "charts" / chart / "values.yaml").read_text()
    )["image"]
    return image["repository"], images.image_tag(dockerfile, root, prefix=str(image["tag"]))


def registry_image(chart: str, root: Path) -> str:
    """``repository:tag`` of a server image taken from its registry (the chart's default)."""
    image = yaml.safe_load(
        (root / "helm" / "servecmp" / "charts" / chart / "values.yaml").read_text()
    )["image"]
    return f"{image['repository']}:{image['tag']}"


def ensure_pulled(ops: Ops, image: str) -> None:
    """Pull a registry image on the host, before the cluster install: it is then `kind load`ed
    like the images built here, so no server's install -> Ready includes a registry download
    (the chart's IfNotPresent finds it on the node)."""
    if ops.run(["docker", "image", "inspect", image], check=False, capture=True).returncode == 0:
        return
    ops.log(f"pulling {image} on the host")
    ops.run(["docker", "pull", image], capture=True)


def ensure_image(ops: Ops, dockerfile: Path, image: str, context: Path) -> None:
    if ops.run(["docker", "image", "inspect", image], check=False, capture=True).returncode == 0:
        return
    ops.log(f"building {image} (minutes the first time)")
    ops.run(
        ["docker", "build", "-q", "-f", str(dockerfile), "-t", image, str(context)], capture=True
    )


def load_onto(ops: Ops, settings: Settings, image: str, role: str) -> None:
    from servecmp.cluster import images

    nodes = images.nodes_with_role(ops.kind_dir / "kind-config.yaml", role, settings.cluster)
    if not nodes:
        raise KindError(f"no node with servecmp.io/role={role} in deploy/kind/kind-config.yaml")

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return ops.run(cmd, check=False, capture=True)

    try:
        how = images.load_image(image, settings.cluster, nodes, run=run)
    except RuntimeError as err:
        raise KindError(str(err)) from None
    ops.log(f"{image} -> {', '.join(nodes)} ({how})")


def _ensure_namespace(ops: Ops, settings: Settings, namespace: str) -> None:
    manifest = ops.kubectl(
        settings, "create", "namespace", namespace, "--dry-run=client", "-o", "yaml", capture=True
    ).stdout
    ops.kubectl(settings, "apply", "-f", "-", stdin=manifest, capture=True)


def _cluster_exists(ops: Ops, settings: Settings) -> bool:
    out = ops.run(["kind", "get", "clusters"], check=False, capture=True).stdout or ""
    return settings.cluster in out.split()


def _preflight(ops: Ops, experiment: Path, exp: Any, loadgen_cpu: float | None = None) -> bool:
    from servecmp.cluster import preflight

    cpus, source = preflight.host_cpus()
    ok, msg = preflight.check(exp, cpus, source, str(experiment), loadgen_cpu=loadgen_cpu)
    print(msg, file=sys.stdout if ok else sys.stderr, flush=True)
    return ok


# ---- up -----------------------------------------------------------------------------------------
def up(
    experiment: Path,
    *,
    settings: Settings | None = None,
    ops: Ops | None = None,
    helm_args: Sequence[str] | None = None,
    pod_security: str | None = None,
) -> int:
    """Create (or reuse) the kind cluster, install kube-prometheus-stack and every server the
    experiment targets, wait until all are Ready, record install -> Ready and run ``helm test``.
    Idempotent: re-running upgrades in place. Returns an exit code (3: does not fit; 4: a host
    port the kind config maps is taken)."""
    from servecmp.cluster import artifacts, helmvalues, images
    from servecmp.experiment import load_experiment

    ops = ops or Ops()
    s = settings or Settings.load(ops.kind_dir / "versions.env")
    kind_dir = ops.kind_dir
    experiment = Path(experiment)
    pod_security = pod_security or os.environ.get("SERVECMP_POD_SECURITY") or "restricted"
    if (
        helm_args is None
    ):  # extra `helm upgrade` arguments for our chart, e.g. "--set global.replicas=2"
        helm_args = shlex.split(os.environ.get("SERVECMP_HELM_ARGS", ""))
    build = ops.root / "build" / "kind"
    try:
        exp = load_experiment(experiment)
        # 0. does the experiment fit on this host's kind nodes? (before anything is created)
        if not _preflight(ops, experiment, exp):
            return 3
        exists = _cluster_exists(ops, s)
        if not exists:
            # the ports kind will publish (an existing cluster's node holds them itself)
            from servecmp.cluster import preflight

            free, msg = preflight.check_ports(kind_dir / "kind-config.yaml")
            print(msg, file=sys.stdout if free else sys.stderr, flush=True)
            if not free:
                return 4
        (build / "artifacts").mkdir(parents=True, exist_ok=True)

        # 1. cluster
        if exists:
            ops.log(f"cluster '{s.cluster}' exists; reusing it")
        else:
            ops.log(f"creating cluster '{s.cluster}' ({s.node_image})")
            ops.run(
                [
                    "kind",
                    "create",
                    "cluster",
                    "--name",
                    s.cluster,
                    "--image",
                    s.node_image,
                    "--config",
                    str(kind_config(kind_dir, build)),
                    "--wait",
                    "180s",
                ]
            )
        ops.kubectl(s, "wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s")

        # 2. model (the measured version only) + generated configs and values (wire included)
        ops.log(f"exporting model '{exp.model}' and generating configs for {experiment}")
        models = ops.root / "build" / "models"
        # a card model is named by its file: the export runs in another process
        ops.module("cli", "export", "--model", exp.model_card or exp.model, "--out", str(models))
        config_dir, values_file = helmvalues.write_helm_inputs(exp, build)
        values = yaml.safe_load(values_file.read_text())
        artifacts.stage(models / exp.model, build / "artifacts", exp.model)

        # 3. images built here (tagged by content) or pulled on the host, loaded onto the server
        #    node only: install -> Ready is container start to Ready for every server
        art_tag = f"{exp.model}-{images.image_tag(kind_dir / 'artifacts.Dockerfile', build / 'artifacts')}"
        art_image = f"servecmp/model-artifacts:{art_tag}"
        ensure_image(ops, kind_dir / "artifacts.Dockerfile", art_image, build / "artifacts")
        sets = [
            "--set",
            f"global.monitoring.release={s.kps_release}",
            "--set",
            f"global.modelArtifacts.image.tag={art_tag}",
        ]
        built = [art_image]
        charts = enabled_charts(ops.chart, values)
        for chart in charts:
            local = local_image(chart, ops.root)
            if local is None:
                pulled = registry_image(chart, ops.root)
                ensure_pulled(ops, pulled)
                built.append(pulled)
                continue
            image = f"{local[0]}:{local[1]}"
            ensure_image(ops, kind_dir / f"{chart}.Dockerfile", image, ops.root)
            sets += ["--set", f"{chart}.image.tag={local[1]}"]
            built.append(image)
        for image in built:
            load_onto(ops, s, image, "server")

        # 4. kube-prometheus-stack; Grafana admin Secret with a random password
        _ensure_namespace(ops, s, s.kps_namespace)
        if (
            ops.kubectl(
                s,
                "-n",
                s.kps_namespace,
                "get",
                "secret",
                "servecmp-grafana-admin",
                check=False,
                capture=True,
            ).returncode
            != 0
        ):
            ops.log(
                "creating the Grafana admin Secret (random password; make kind-grafana-password prints it)"
            )
            password = "".join(c for c in secrets.token_urlsafe(32) if c.isalnum())[:24]
            ops.kubectl(
                s,
                "-n",
                s.kps_namespace,
                "create",
                "secret",
                "generic",
                "servecmp-grafana-admin",
                "--from-literal=admin-user=admin",
                f"--from-literal=admin-password={password}",
                capture=True,
            )
        ops.log(f"installing kube-prometheus-stack {s.kps_chart_version}")
        ops.run(
            [
                ops.helm,
                "repo",
                "add",
                "prometheus-community",
                "https://prometheus-community.github.io/helm-charts",
                "--force-update",
            ],
            capture=True,
        )
        ops.run(
            [
                ops.helm,
                "upgrade",
                "--install",
                s.kps_release,
                "prometheus-community/kube-prometheus-stack",
                "--kube-context",
                s.context,
                "--namespace",
                s.kps_namespace,
                "--version",
                s.kps_chart_version,
                "-f",
                str(kind_dir / "kube-prometheus-stack-values.yaml"),
            ]
        )
        # Prometheus is a StatefulSet the operator creates later: wait for it too
        ops.module(
            "cluster.cluster",
            "--context",
            s.context,
            "--namespace",
            s.kps_namespace,
            "wait",
            "--timeout",
            "600",
            "--min-statefulsets",
            "1",
        )

        # 5. our chart, in a namespace that enforces Pod Security (hostPath artifacts need privileged)
        _ensure_namespace(ops, s, s.namespace)
        ops.kubectl(
            s,
            "label",
            "--overwrite",
            "namespace",
            s.namespace,
            f"pod-security.kubernetes.io/enforce={pod_security}",
            "pod-security.kubernetes.io/warn=restricted",
            capture=True,
        )
        ops.log(
            f"installing helm/servecmp (release {s.release}, namespace {s.namespace}): "
            f"{', '.join(charts)}"
        )
        ops.run(
            [
                ops.helm,
                "upgrade",
                "--install",
                s.release,
                str(ops.chart),
                "--kube-context",
                s.context,
                "--namespace",
                s.namespace,
                "-f",
                str(values_file),
                *sets,
                *helmvalues.set_file_args(config_dir),
                *helm_args,
            ]
        )

        # 6. wait (fail fast on a stuck pod), record install -> Ready / restarts / image sizes, test
        ops.module(
            "cluster.cluster",
            "--context",
            s.context,
            "--namespace",
            s.namespace,
            "wait",
            "--timeout",
            "600",
        )
        ops.module(
            "cluster.cluster",
            "--context",
            s.context,
            "--namespace",
            s.namespace,
            "report",
            "--out",
            str(build / "cluster-report.json"),
            capture=True,
        )
        ops.run(
            [
                ops.helm,
                "test",
                s.release,
                "--kube-context",
                s.context,
                "--namespace",
                s.namespace,
                "--logs",
                "--timeout",
                "5m",
            ]
        )
    except (KindError, FileNotFoundError, ValueError) as err:
        print(f"[kind] ERROR: {err}", file=sys.stderr)
        return 1
    ops.log(
        f"ready. Grafana: http://127.0.0.1:{s.grafana_host_port} (user admin; make kind-grafana-password)"
        f"  Prometheus: http://127.0.0.1:{s.prometheus_host_port}"
    )
    ops.log(f"cluster report: {build / 'cluster-report.json'}")
    return 0


# ---- load ---------------------------------------------------------------------------------------
def _wires(exp: Any) -> dict[str, dict[str, Any]]:
    """chart -> generated wire values (the same helmvalues gives the chart)."""
    from servecmp.cluster import helmvalues
    from servecmp.configgen import Placement, render_all

    values = helmvalues.experiment_values(exp, render_all(exp, Placement.kubernetes()))
    return {k: v["wire"] for k, v in values.items() if isinstance(v, dict) and v.get("wire")}


def _follow(ops: Ops, s: Settings, job: str, log_path: Path) -> threading.Thread:
    """Follow the master Job's log into ``log_path`` while it runs: each finished step lands there
    at once, so a Job killed at its deadline loses no finished step. ``kubectl logs -f`` exits at
    once on a container not started yet, so wait for it first (cluster.py wait-started)."""

    def follow() -> None:
        with log_path.open("w") as fh:
            started = ops.module(
                "cluster.cluster",
                "--context",
                s.context,
                "--namespace",
                s.namespace,
                "wait-started",
                f"{job}-master",
                "--timeout",
                "300",
                check=False,
                capture=True,
            )
            if started.returncode != 0:
                fh.write(started.stderr or "")
                return
            ops.kubectl(
                s, "-n", s.namespace, "logs", "-f", f"job/{job}-master", check=False, stdout=fh
            )

    t = threading.Thread(target=follow, name=f"follow-{job}", daemon=True)
    t.start()
    return t


def load(
    experiment: Path,
    *,
    targets: Sequence[str] = (),
    engine: str = "steps",
    recover: bool = False,
    locust_args: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    ops: Ops | None = None,
) -> int:
    """In-cluster load on the loadgen node against each REST/gRPC target of ``experiment``.

    ``engine="steps"``: the experiment's own load profile through the step engine; the steps are
    merged into runs/<id>/steps.jsonl and the report is built. ``engine="locust"``: Locust master
    + workers; ``locust_args`` (duration, users, workers, locustfile) apply to it only. With
    ``recover`` one server pod is deleted under load and the seconds until Ready are recorded."""
    from servecmp.cluster import cluster, provenance
    from servecmp.experiment import load_experiment

    ops = ops or Ops()
    s = settings or Settings.load(ops.kind_dir / "versions.env")
    experiment = Path(experiment)
    locust_args = {k: v for k, v in (locust_args or {}).items() if v is not None}
    if engine not in ENGINES:
        print(f"[kind] ERROR: engine: expected steps or locust, got {engine!r}", file=sys.stderr)
        return 2
    unknown = sorted(set(locust_args) - set(LOCUST_OPTIONS))
    if unknown:
        print(
            f"[kind] ERROR: unknown Locust option(s) {unknown}; known: {', '.join(LOCUST_OPTIONS)}",
            file=sys.stderr,
        )
        return 2
    if engine == "steps" and locust_args:
        given = ", ".join(f"--{k}" for k in locust_args)
        print(
            f"[kind] ERROR: {given} applies to --engine locust only (the steps engine runs the "
            f"experiment's load profile)",
            file=sys.stderr,
        )
        return 2
    try:
        exp = load_experiment(experiment)
        if not _cluster_exists(ops, s):
            raise KindError(
                f"no cluster '{s.cluster}': run `servecmp kind up` (make kind-up) first"
            )
        loadgen_cpu = 1.0 + int(locust_args.get("workers", 1)) if engine == "locust" else 1.0
        if not _preflight(ops, experiment, exp, loadgen_cpu=loadgen_cpu):
            return 3
        run_id = f"kind-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
        run_dir = ops.root / "runs" / run_id
        (run_dir / "kind").mkdir(parents=True, exist_ok=True)
        (run_dir / "experiment.yaml").write_text(experiment.read_text())

        # load generator image: the installed wheel of this working tree, tagged by what it copies
        from servecmp.cluster import images

        gen_image = (
            f"servecmp/loadgen:{images.image_tag(ops.kind_dir / 'loadgen.Dockerfile', ops.root)}"
        )
        ensure_image(ops, ops.kind_dir / "loadgen.Dockerfile", gen_image, ops.root)
        load_onto(ops, s, gen_image, "loadgen")

        # meta.json: server images (tag + digest), the runtimes the servers report, kind placement
        ops.module(
            "cluster.provenance",
            "--context",
            s.context,
            "--namespace",
            s.namespace,
            "meta",
            str(experiment),
            "--run-id",
            run_id,
            "--run-dir",
            str(run_dir),
            "--loadgen-image",
            gen_image,
        )

        wires = _wires(exp)
        plan = provenance.addresses(exp, s.release, s.namespace, targets, wires)
        if not plan:
            raise KindError(f"no REST/gRPC targets selected in {experiment}")
        rc = 0
        for target, address in plan:
            rc |= _load_target(
                ops,
                s,
                exp,
                experiment,
                run_id,
                run_dir,
                target,
                address,
                gen_image,
                engine,
                recover,
                locust_args,
                wires,
            )
        ops.module(
            "cluster.cluster",
            "--context",
            s.context,
            "--namespace",
            s.namespace,
            "report",
            "--out",
            str(run_dir / "kind" / "cluster-report.json"),
            capture=True,
        )
        report = run_dir / "kind" / "cluster-report.json"
        recoveries = sorted((run_dir / "kind").glob("*/recovery.json"))
        if report.is_file():
            import json

            cluster.to_friction(json.loads(report.read_text()), run_dir, recoveries)
        ops.log(f"results: {run_dir}")
        if (
            engine == "steps"
            and ops.module("cli", "report", str(run_dir), check=False).returncode != 0
        ):
            rc = 1
        return rc
    except (KindError, FileNotFoundError, ValueError) as err:
        print(f"[kind] ERROR: {err}", file=sys.stderr)
        return 1


def _load_target(
    ops: Ops,
    s: Settings,
    exp: Any,
    experiment: Path,
    run_id: str,
    run_dir: Path,
    target: str,
    address: str,
    image: str,
    engine: str,
    recover: bool,
    locust_args: Mapping[str, Any],
    wires: Mapping[str, Mapping[str, Any]],
) -> int:
    from servecmp.cluster import loadgen

    (t,) = [t for t in exp.targets if t.name == target]
    replicas = _replicas(ops, s, t.server)
    job = loadgen.load_job(
        exp,
        target,
        run_id=run_id,
        address=address,
        image=image,
        namespace=s.namespace,
        experiment_text=experiment.read_text(),
        engine=engine,
        locust_args=dict(locust_args),
        server_metrics=server_metrics(s, t.server, replicas, wires),
    )
    docs = loadgen.manifests(job)
    manifest = run_dir / "kind" / f"{target}.yaml"
    manifest.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    deadline = max(d["spec"]["activeDeadlineSeconds"] for d in docs if d and d["kind"] == "Job")
    ops.log(f"load: {target} -> {address} ({engine} engine, Job deadline {deadline}s)")
    ops.kubectl(s, "apply", "-f", "-", stdin=manifest.read_text(), capture=True)
    mlog = run_dir / "kind" / f"{target}.master.log"
    follower = _follow(ops, s, job.name, mlog)
    rc = 0
    if recover:
        import time

        time.sleep(20)
        out = run_dir / "kind" / target / "recovery.json"
        if (
            replicas is None
            or ops.module(
                "cluster.cluster",
                "--context",
                s.context,
                "--namespace",
                s.namespace,
                "recover",
                "--server",
                t.server,
                "--replicas",
                str(replicas),
                "--out",
                str(out),
                check=False,
            ).returncode
            != 0
        ):
            rc = 1
    if (
        ops.module(
            "cluster.cluster",
            "--context",
            s.context,
            "--namespace",
            s.namespace,
            "wait-job",
            f"{job.name}-master",
            "--timeout",
            str(deadline + 60),
            check=False,
        ).returncode
        != 0
    ):
        ops.log(f"{target}: load Job did not complete")
        rc = 1
    follower.join(timeout=120)
    dest = run_dir / "kind" / target
    text = mlog.read_text(errors="replace") if mlog.is_file() else ""
    try:
        loadgen.extract_results(text, dest)
    except ValueError:
        # the follower may have been cut off (API server or kubelet restart): the finished pod's
        # whole log once more, kept only when it carries the results tar
        full = ops.kubectl(
            s, "-n", s.namespace, "logs", f"job/{job.name}-master", check=False, capture=True
        )
        try:
            loadgen.extract_results(full.stdout or "", dest)
            mlog.write_text(full.stdout or "")
            text = full.stdout or ""
        except ValueError:
            ops.log(
                f"{target}: no results tar in the log (Job killed?); keeping the steps it printed"
            )
    if engine == "steps":
        n = loadgen.merge_run(run_dir, dest / "run", text)
        ops.log(f"{target}: merged {n} step(s)")
    ops.kubectl(
        s,
        "-n",
        s.namespace,
        "delete",
        "job,service,configmap",
        "-l",
        f"servecmp.io/load-job={job.name}",
        "--wait=false",
        check=False,
        capture=True,
    )
    return rc


def server_metrics(
    s: Settings, server: str, replicas: int | None, wires: Mapping[str, Mapping[str, Any]]
) -> tuple[str, str]:
    """(metrics URL, "") when the in-cluster step can read ``server``'s own counters at each
    window's edges, else ("", why not). The metrics Service is a ClusterIP Service: with several
    replicas kube-proxy sends each read to one pod of its choosing, so the two edges of a window
    could read two pods' counters, and their difference would be no window's."""
    from servecmp.cluster import provenance

    if replicas is None:
        return "", "the server Deployment's replica count could not be read"
    if replicas != 1:
        return "", (
            f"{replicas} replicas behind one metrics Service: each read reaches one pod, so a "
            f"window's two edges could read different pods' counters"
        )
    return provenance.metrics_url(server, s.release, s.namespace, wires), ""


def _replicas(ops: Ops, s: Settings, server: str) -> int | None:
    """The server Deployment's replica count as deployed (the chart's global.replicas, or what
    SERVECMP_HELM_ARGS set), so recovery waits for a replacement pod, not for a survivor, and
    the steps read the server's counters only where one pod answers (:func:`server_metrics`)."""
    proc = ops.kubectl(
        s,
        "-n",
        s.namespace,
        "get",
        "deployments",
        "-l",
        f"servecmp.io/server={server}",
        "-o",
        "jsonpath={.items[*].spec.replicas}",
        check=False,
        capture=True,
    )
    counts = (proc.stdout or "").split()
    if proc.returncode != 0 or len(counts) != 1 or not counts[0].isdigit():
        ops.log(
            f"{server}: cannot read its Deployment's replicas ({proc.stderr or counts}); no "
            f"recovery measured and no latency breakdown read"
        )
        return None
    return int(counts[0])


# ---- down ---------------------------------------------------------------------------------------
def down(*, settings: Settings | None = None, ops: Ops | None = None) -> int:
    """Delete the kind cluster (idempotent). Built images and build/kind are kept."""
    ops = ops or Ops()
    s = settings or Settings.load(ops.kind_dir / "versions.env")
    try:
        if not _cluster_exists(ops, s):
            ops.log(f"no cluster '{s.cluster}'; nothing to do")
            return 0
        ops.log(f"deleting cluster '{s.cluster}'")
        ops.run(["kind", "delete", "cluster", "--name", s.cluster])
    except KindError as err:
        print(f"[kind] ERROR: {err}", file=sys.stderr)
        return 1
    return 0
