"""servecmp/cluster/commands.py called as a library (what `servecmp kind up|load|down` calls), with a
recording Ops: no docker, kind, kubectl or helm runs. The shell-level dry run of the same flow is
tests/test_kind_scripts.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from helm_util import ROOT
from kind_dryrun.recording import RecordingOps, copy_checkout

from servecmp.cluster import commands, preflight

QUICK = Path("loadtests/experiments/quick.yaml")


@pytest.fixture()
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_checkout(ROOT, tmp_path / "a checkout")
    monkeypatch.chdir(root)
    monkeypatch.setattr(preflight, "host_cpus", lambda: (8.0, "test"))
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: None)
    return root


def test_up_builds_the_local_server_images_and_loads_every_server_image(
    checkout: Path, monkeypatch
) -> None:
    assert (
        checkout / "servecmp" / "servers" / "kserve" / "model_server.py"
    ).is_file()  # hashed into the tag
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 0
    builds = [c[c.index("-f") + 1] for c in ops.calls if c[:2] == ["docker", "build"]]
    assert sorted(Path(b).name for b in builds) == [
        "artifacts.Dockerfile",
        "kserve.Dockerfile",
        "torchserve.Dockerfile",
    ]  # tfserving is pulled
    loads = [c[-1] for c in ops.calls if c[:3] == ["kind", "load", "docker-image"]]
    assert [i.split(":")[0] for i in loads] == [
        "servecmp/model-artifacts",
        "servecmp/kserve",
        "tensorflow/serving",
        "servecmp/torchserve",
    ]
    # TF Serving: pulled on the host before the chart install and loaded like the built ones,
    # so its install -> Ready holds no registry download the others never pay
    tfs = next(i for i in loads if i.startswith("tensorflow/serving:"))
    pull = ops.calls.index(["docker", "pull", tfs])
    load = next(
        i
        for i, c in enumerate(ops.calls)
        if c[:3] == ["kind", "load", "docker-image"] and c[-1] == tfs
    )
    (install,) = [
        i for i, c in enumerate(ops.calls) if c[:4] == ["helm", "upgrade", "--install", "servecmp"]
    ]
    assert pull < load < install
    assert ops.calls[load][ops.calls[load].index("--nodes") + 1] == "servecmp-worker"
    (chart,) = [c for c in ops.calls if c[:4] == ["helm", "upgrade", "--install", "servecmp"]]
    sets = [chart[i + 1] for i, a in enumerate(chart) if a == "--set"]
    kserve_tag = next(s for s in sets if s.startswith("kserve.image.tag="))
    assert kserve_tag.startswith("kserve.image.tag=kserve0.21.0-py3.11-torch2.13.0-")
    assert f"servecmp/kserve:{kserve_tag.split('=', 1)[1]}" in loads
    assert not any(s.startswith("tfserving.image.tag=") for s in sets)
    # the generated values carry the wire the chart renders from
    values = (checkout / "build" / "kind" / "experiment-values.yaml").read_text()
    assert "wire:" in values and "metricsPort" in values


def test_up_stops_before_creating_anything_when_it_does_not_fit(
    checkout: Path, monkeypatch
) -> None:
    monkeypatch.setattr(preflight, "host_cpus", lambda: (2.0, "test"))
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 3
    assert not any(c[:1] in (["kind"], ["docker"], ["helm"]) for c in ops.calls)


def test_up_stops_before_creating_anything_when_a_mapped_port_is_taken(
    checkout: Path, monkeypatch, capsys
) -> None:
    held = {9090: "pid 812 (prometheus: /usr/bin/prometheus)"}
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: held.get(port))
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 4
    err = capsys.readouterr().err
    assert "127.0.0.1:9090 held by pid 812 (prometheus" in err and "3000" not in err
    assert ops.calls == [["kind", "get", "clusters"]]  # nothing created, built or installed


def test_up_reuses_an_existing_cluster_without_a_port_check(checkout: Path, monkeypatch) -> None:
    # the existing cluster's own node container holds the mapped ports
    monkeypatch.setattr(preflight, "port_holder", lambda address, port: "pid 1 (docker-proxy)")
    ops = RecordingOps(checkout, cluster=True)
    assert commands.up(QUICK, ops=ops) == 0
    assert not any(c[:3] == ["kind", "create", "cluster"] for c in ops.calls)


def test_up_reports_a_failed_step_with_its_command(checkout: Path, monkeypatch, capsys) -> None:

    class Failing(RecordingOps):
        def run(self, cmd, **kw):  # type: ignore[no-untyped-def, override]
            proc = super().run(cmd, **kw)
            if list(cmd)[:3] == ["kind", "create", "cluster"]:
                raise commands.KindError(f"`{' '.join(cmd)}` failed (exit 1)")
            return proc

    assert commands.up(QUICK, ops=Failing(checkout)) == 1
    assert "kind create cluster --name servecmp" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"engine": "wrk"}, "expected steps or locust"),
        ({"locust_args": {"duration": 30}}, "--duration applies to --engine locust only"),
        ({"engine": "locust", "locust_args": {"rate": 3}}, "unknown Locust option(s) ['rate']"),
    ],
)
def test_load_refuses_bad_options_before_touching_anything(
    checkout: Path, capsys, kw, message
) -> None:
    ops = RecordingOps(checkout, cluster=True)
    assert commands.load(QUICK, ops=ops, **kw) == 2
    assert message in capsys.readouterr().err and ops.calls == []


def test_load_needs_a_cluster(checkout: Path, capsys) -> None:
    ops = RecordingOps(checkout, cluster=False)
    assert commands.load(QUICK, ops=ops) == 1
    assert "run `servecmp kind up`" in capsys.readouterr().err
    assert ops.calls == [["kind", "get", "clusters"]]


@pytest.mark.parametrize("exists", [True, False])
def test_down_deletes_only_an_existing_cluster(checkout: Path, exists: bool) -> None:
    ops = RecordingOps(checkout, cluster=exists)
    assert commands.down(ops=ops) == 0
    deletes = [c for c in ops.calls if c[:2] == ["kind", "delete"]]
    assert deletes == ([["kind", "delete", "cluster", "--name", "servecmp"]] if exists else [])


def test_settings_come_from_versions_env() -> None:
    s = commands.Settings.load()
    env = (ROOT / "deploy" / "kind" / "versions.env").read_text()
    assert (
        f"KIND_CLUSTER_NAME={s.cluster}" in env
        and f"KPS_CHART_VERSION={s.kps_chart_version}" in env
    )
    assert s.context == f"kind-{s.cluster}"


def test_extra_helm_args_reach_the_chart_install(checkout: Path, monkeypatch) -> None:
    import yaml

    # an experiment without KServe targets: its image is neither built nor loaded
    exp = yaml.safe_load((checkout / QUICK).read_text())
    exp["targets"] = [t for t in exp["targets"] if t["server"] != "kserve"]
    no_kserve = checkout / "loadtests" / "experiments" / "no-kserve.yaml"
    no_kserve.write_text(yaml.safe_dump(exp))
    ops = RecordingOps(checkout)
    assert commands.up(no_kserve, ops=ops, helm_args=["--set", "global.replicas=2"]) == 0
    (chart,) = [c for c in ops.calls if c[:4] == ["helm", "upgrade", "--install", "servecmp"]]
    assert chart[-2:] == ["--set", "global.replicas=2"]  # last: overrides the generated values
    assert not any(
        c[:2] == ["docker", "build"] and any("kserve" in a for a in c) for c in ops.calls
    )


# ---- what `kind up` does, in order (behaviour on the recording fake) -------------------------------
def _helm_install(ops: RecordingOps, release: str) -> int:
    return ops.index(lambda c: c[:4] == ["helm", "upgrade", "--install", release])


def test_up_creates_the_grafana_secret_kube_prometheus_stack_reads(checkout: Path) -> None:
    import yaml

    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 0
    kps = yaml.safe_load(
        (checkout / "deploy" / "kind" / "kube-prometheus-stack-values.yaml").read_text()
    )
    name = kps["grafana"]["admin"]["existingSecret"]
    create = ops.index(lambda c: c[:1] == ["kubectl"] and "create" in c and "secret" in c)
    created = ops.calls[create]
    assert name in created and "-n" in created and created[created.index("-n") + 1] == "monitoring"
    assert any(a.startswith("--from-literal=admin-password=") and len(a) > 40 for a in created)
    assert create < _helm_install(ops, "kps")
    # an existing Secret (a re-run) keeps its password
    again = RecordingOps(checkout, grafana_secret=True)
    assert commands.up(QUICK, ops=again) == 0
    assert not any(c[:1] == ["kubectl"] and "create" in c and "secret" in c for c in again.calls)


def test_up_waits_for_prometheus_before_installing_the_servers(checkout: Path) -> None:
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 0
    waits = ops.module_calls("servecmp.cluster.cluster", "wait")
    monitoring = next(c for c in waits if c[c.index("--namespace") + 1] == "monitoring")
    assert monitoring[monitoring.index("--min-statefulsets") + 1] == "1"
    servers = next(c for c in waits if c[c.index("--namespace") + 1] == "servecmp")
    assert _helm_install(ops, "kps") < ops.calls.index(monitoring) < _helm_install(ops, "servecmp")
    assert (
        _helm_install(ops, "servecmp")
        < ops.calls.index(servers)
        < ops.index(lambda c: c[:2] == ["helm", "test"])
    )
    # no helm --wait sitting out its timeout: our waits fail fast on a stuck pod
    assert not any("--wait" in c for c in ops.calls if c[:1] == ["helm"])


def test_up_stages_and_builds_the_measured_version_only(checkout: Path) -> None:
    ops = RecordingOps(checkout)  # the export writes versions 1 and 2
    assert commands.up(QUICK, ops=ops) == 0
    staged = checkout / "build" / "kind" / "artifacts"
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()) == [
        "kserve/resnet/1/model.pt",
        "tfserving/resnet/1/saved_model.pb",
        "torchserve/resnet.mar",
    ]
    build = next(c for c in ops.calls if c[:2] == ["docker", "build"] and c[-1] == str(staged))
    assert Path(build[build.index("-f") + 1]).name == "artifacts.Dockerfile"
    assert ops.index(lambda c: "export" in c) < ops.calls.index(build)


@pytest.mark.parametrize(("env", "level"), [(None, "restricted"), ("baseline", "baseline")])
def test_up_labels_the_namespace_with_pod_security_before_installing(
    checkout: Path, monkeypatch, env, level: str
) -> None:
    if env:
        monkeypatch.setenv("SERVECMP_POD_SECURITY", env)
    else:
        monkeypatch.delenv("SERVECMP_POD_SECURITY", raising=False)
    ops = RecordingOps(checkout)
    assert commands.up(QUICK, ops=ops) == 0
    label = ops.index(lambda c: c[:1] == ["kubectl"] and "label" in c and "servecmp" in c)
    assert f"pod-security.kubernetes.io/enforce={level}" in ops.calls[label]
    assert label < _helm_install(ops, "servecmp")


# ---- what `kind load` does ---------------------------------------------------------------------------
def _step_log() -> str:
    from servecmp.cluster.loadgen import STEP_MARK
    from servecmp.results.schema import StepResult

    steps = [
        StepResult(
            run_id="kind-x",
            step_id=f"00{i}-torchserve-rest-json-closed_loop-c{c}",
            index=i,
            target="torchserve-rest-json",
            server="torchserve",
            protocol="rest",
            encoding="json",
            sweep="closed_loop",
            mode="closed_loop",
            concurrency=c,
            started_at="2026-01-01T00:00:00Z",
            warmup_s=1,
            window_s=1,
            stop_reason="stable",
            ok=10,
            requests=10,
        )
        for i, c in enumerate((1, 4))
    ]
    return (
        "starting\n"
        + "".join(STEP_MARK + s.model_dump_json() + "\n" for s in steps)
        + "step 3 running\n"
    )


def test_load_builds_the_tagged_loadgen_image_and_loads_it_on_the_loadgen_node(
    checkout: Path,
) -> None:
    from servecmp.cluster import images

    ops = RecordingOps(checkout, cluster=True, job_log=_step_log())
    assert commands.load(QUICK, targets=["torchserve-rest-json"], ops=ops) == 0
    image = f"servecmp/loadgen:{images.image_tag(checkout / 'deploy' / 'kind' / 'loadgen.Dockerfile', checkout)}"
    assert [
        "docker",
        "build",
        "-q",
        "-f",
        str(checkout / "deploy" / "kind" / "loadgen.Dockerfile"),
        "-t",
        image,
        str(checkout),
    ] in ops.calls
    load = next(c for c in ops.calls if c[:3] == ["kind", "load", "docker-image"])
    assert load[-1] == image and load[load.index("--nodes") + 1] == "servecmp-worker2"
    # the Job applied runs that image
    applied = next(
        s for c, s in zip(ops.calls, ops.stdins, strict=True) if c[-3:] == ["apply", "-f", "-"]
    )
    assert f"image: {image}" in (applied or "")


def test_load_merges_the_steps_the_job_printed(checkout: Path) -> None:
    from servecmp.results.store import RunStore

    ops = RecordingOps(checkout, cluster=True, job_log=_step_log())
    assert commands.load(QUICK, targets=["torchserve-rest-json"], ops=ops) == 0
    (run,) = (checkout / "runs").glob("kind-*")
    assert [s.concurrency for s in RunStore(run).read_steps().steps] == [1, 4]
    assert ops.module_calls("servecmp.cli", "report")  # the report is built from them


def test_load_preflight_counts_the_locust_workers(checkout: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(preflight, "host_cpus", lambda: (4.0, "test"))
    ops = RecordingOps(checkout, cluster=True)
    rc = commands.load(QUICK, engine="locust", locust_args={"workers": 4}, ops=ops)
    assert rc == 3 and "TOO MUCH: loadgen node" in capsys.readouterr().err
    assert not any(
        c[:2] == ["docker", "build"] or c[-3:] == ["apply", "-f", "-"] for c in ops.calls
    )


@pytest.mark.parametrize("replicas", [1, 2])
def test_recovery_is_asked_for_the_deployed_replica_count(
    checkout: Path, monkeypatch, replicas: int
) -> None:
    import time

    monkeypatch.setattr(time, "sleep", lambda s: None)  # the load runs 20 s before the delete
    ops = RecordingOps(checkout, cluster=True, job_log=_step_log(), replicas=replicas)
    assert commands.load(QUICK, targets=["torchserve-rest-json"], recover=True, ops=ops) == 0
    (rec,) = ops.module_calls("servecmp.cluster.cluster", "recover")
    assert rec[rec.index("--server") + 1] == "torchserve" and rec[
        rec.index("--replicas") + 1
    ] == str(replicas)


def _job_env(ops: RecordingOps) -> dict[str, str]:
    import yaml

    applied = next(
        s for c, s in zip(ops.calls, ops.stdins, strict=True) if c[-3:] == ["apply", "-f", "-"]
    )
    (job,) = [d for d in yaml.safe_load_all(applied or "") if d and d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_load_job_reads_the_servers_metrics_page_where_one_pod_answers_it(
    checkout: Path, replicas: int
) -> None:
    """One replica: the Job's steps read the chart's metrics Service at each window's edges (the
    latency breakdown). Several: a ClusterIP Service sends each read to any pod, so the steps
    are told why they read none, and their breakdown says so."""
    from servecmp.load.engine.spec import check_address

    ops = RecordingOps(checkout, cluster=True, job_log=_step_log(), replicas=replicas)
    assert commands.load(QUICK, targets=["torchserve-rest-json"], ops=ops) == 0
    env = _job_env(ops)
    if replicas == 1:
        # helm/servecmp/charts/servecmp-lib/templates/_helpers.tpl: <release>-<service>-metrics
        # on the wire's metrics port (TorchServe's metrics_address, 8082)
        url = "http://servecmp-torchserve-metrics.servecmp.svc:8082/metrics"
        assert env["SERVECMP_SERVER_METRICS_URL"] == url
        assert env["SERVECMP_SERVER_METRICS_UNREAD"] == ""
        check_address(url, cluster_mode=True)  # the in-cluster step accepts it
    else:
        assert env["SERVECMP_SERVER_METRICS_URL"] == ""
        assert env["SERVECMP_SERVER_METRICS_UNREAD"].startswith("2 replicas behind one metrics")
