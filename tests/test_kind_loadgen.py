"""In-cluster load Jobs (issue 10, items 5, 6, 8): the image tag follows the working tree, the
experiment is passed in as a ConfigMap, the Job deadline follows the experiment's plan, finished
steps survive a Job killed at its deadline, and the Job's memory is sized from measured RSS."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml
from helm_util import ROOT

from servecmp.cluster import images, loadgen
from servecmp.experiment import Target, load_experiment

QUICK = ROOT / "loadtests" / "experiments" / "quick.yaml"


# ---- item 5: image tag = what the image contains -------------------------------------------------
def test_tag_changes_with_an_unstaged_edit(tmp_path: Path) -> None:
    ctx = tmp_path / "repo with space"
    (ctx / "pkg").mkdir(parents=True)
    (ctx / "pkg" / "a.py").write_text("x = 1\n")
    (ctx / "other.txt").write_text("not copied\n")
    (ctx / "Dockerfile").write_text(
        "FROM python:3.11-slim AS b\nWORKDIR /w\nCOPY pkg/ pkg/\n"
        "FROM python:3.11-slim\nCOPY --from=b /w /w\n"
    )
    git = ["git", "-C", str(ctx), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    before = images.image_tag(ctx / "Dockerfile", ctx)
    (ctx / "other.txt").write_text("changed, but the image does not copy it\n")
    assert images.image_tag(ctx / "Dockerfile", ctx) == before
    (ctx / "pkg" / "a.py").write_text("x = 2\n")  # edited, NOT staged
    assert images.image_tag(ctx / "Dockerfile", ctx) != before
    (ctx / "pkg" / "__pycache__").mkdir()
    (ctx / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    after = images.image_tag(ctx / "Dockerfile", ctx)
    (ctx / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"other junk")
    assert images.image_tag(ctx / "Dockerfile", ctx) == after  # caches are not image content


def test_loadgen_image_tag_covers_every_copied_path() -> None:
    srcs = images.context_sources(ROOT / "deploy" / "kind" / "loadgen.Dockerfile")
    assert {"servecmp", "pyproject.toml", "loadtests/locustfiles"} <= set(srcs)
    # the tag `kind load` builds with: tests/test_kind_commands.py


def _render(target: str, experiment: Path, engine: str = "steps", **locust: object) -> list[dict]:
    job = loadgen.load_job(
        load_experiment(experiment),
        target,
        run_id="kind-x",
        address="svc.servecmp.svc:8080",
        image="servecmp/loadgen:abc",
        namespace="servecmp",
        experiment_text=experiment.read_text(),
        engine=engine,
        locust_args=locust,
    )
    return [d for d in loadgen.manifests(job) if d]


def test_experiment_outside_the_image_is_passed_in_as_a_configmap(tmp_path: Path) -> None:
    exp = tmp_path / "my experiments" / "mine.yaml"
    exp.parent.mkdir()
    exp.write_text(QUICK.read_text().replace("name: quick", "name: mine"))
    cm, job = _render("torchserve-rest-json", exp)
    assert cm["kind"] == "ConfigMap" and cm["data"]["experiment.yaml"] == exp.read_text()
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SERVECMP_EXPERIMENT"] == loadgen.EXPERIMENT_MOUNT
    assert loadgen.EXPERIMENT_MOUNT in c["command"]  # servecmp steps reads the mounted file
    vol = next(v for v in spec["volumes"] if v["name"] == "experiment")
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "experiment")
    assert f"{mount['mountPath']}/experiment.yaml" == loadgen.EXPERIMENT_MOUNT and mount["readOnly"]


# ---- item 6: deadline from the plan; steps survive a killed Job ---------------------------------
def test_job_deadline_is_the_sum_of_the_steps_hard_deadlines(tmp_path: Path) -> None:
    from servecmp.load.engine.spec import make_spec, plan_steps

    exp_path = tmp_path / "long.yaml"
    data = yaml.safe_load(QUICK.read_text())
    data["load"] = {
        "profile": "closed_loop",
        "warmup_s": 30,
        "concurrency": [1, 2, 4, 8],
        "stability": {"window_s": 20, "windows": 3, "max_windows": 6},
    }
    exp_path.write_text(yaml.safe_dump(data))
    exp = load_experiment(exp_path)
    target = next(t for t in exp.targets if t.name == "tfserving-grpc-tensorproto")
    expected = sum(
        make_spec(
            run_id="x",
            index=i,
            target=target,
            address="a.b.svc:1",
            load=exp.load,
            param=p,
            cluster_mode=True,
        ).hard_deadline_s()
        for i, p in enumerate(plan_steps(exp.load))
    )
    from servecmp.load.engine.burnin import burn_in_spec

    burn = burn_in_spec(
        exp, target, "a.b.svc:1", run_id="x", after="start", number=0, cluster_mode=True
    )
    assert burn is not None  # `servecmp steps` burns the server in before its steps
    expected += burn.hard_deadline_s()
    _, job = _render(target.name, exp_path)
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert expected + loadgen.JOB_STARTUP_S <= deadline < expected + loadgen.JOB_STARTUP_S + 1
    assert deadline > 4 * (30 + 6 * 20)  # four steps of up to 150 s each: not "duration + 300"


def _step(i: int, target: str = "torchserve-rest-json"):
    from servecmp.results.schema import StepResult

    return StepResult(
        run_id="kind-x",
        step_id=f"{i:03d}-{target}",
        index=i,
        target=target,
        server="torchserve",
        protocol="rest",
        encoding="json",
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=1 + i,
        started_at="2026-01-01T00:00:00Z",
        warmup_s=1,
        window_s=1,
        stop_reason="stable",
        ok=10,
        requests=10,
    )


def test_servecmp_steps_prints_each_step_as_it_lands(tmp_path: Path, monkeypatch) -> None:
    import servecmp.load.engine as engine
    import servecmp.load.engine.burnin as burnin
    from servecmp import cli
    from servecmp.results.schema import BurnInRecord
    from servecmp.results.store import RunStore

    seen_before_next: list[str] = []
    out = io.StringIO()
    burned: list[tuple] = []

    def fake_burn_in(exp, target, address, out_dir, *, run_id, after, **kw):
        # the cluster path burns the server in first, like a local run, outside the steps
        burned.append((target.name, address, Path(out_dir).name, after, kw.get("cluster_mode")))
        return BurnInRecord(
            server=target.server,
            target=target.name,
            after=after,
            started_at="t0",
            concurrency=4,
            converged=True,
            duration_s=3.0,
            windows=3,
            window_s=1.0,
            throughput_rps=[60.0, 61.0, 60.5],
        )

    def fake_run_target(exp, target, address, run_dir, *, run_id, on_result=None, **kw):
        assert burned, "the steps ran before the burn-in"
        results = [_step(0), _step(1)]
        for r in results:
            assert on_result is not None
            on_result(r)
            seen_before_next.append(out.getvalue())  # what the log shows before the next step
        return results

    monkeypatch.setattr(engine, "run_target", fake_run_target)
    monkeypatch.setattr(burnin, "run_burn_in", fake_burn_in)
    with redirect_stdout(out):
        rc = cli.main(
            [
                "steps",
                str(QUICK),
                "--target",
                "torchserve-rest-json",
                "--address",
                "127.0.0.1:1",
                "--out",
                str(tmp_path / "run"),
                "--run-id",
                "kind-x",
            ]
        )
    assert rc == 0
    assert burned == [("torchserve-rest-json", "127.0.0.1:1", "burn-in", "start", False)]
    assert "burn-in of torchserve after its start" in out.getvalue().splitlines()[0]
    # provenance: the Job's meta keeps it, and merging the Job's run brings it home
    assert [r.converged for r in RunStore(tmp_path / "run").read_meta().burn_in] == [True]
    local = tmp_path / "local"
    RunStore(local).write_meta(
        RunStore(tmp_path / "run").read_meta().model_copy(update={"burn_in": []})
    )
    RunStore(tmp_path / "run").append_step(_step(0))  # a finished Job's run directory
    loadgen.merge_run(local, tmp_path / "run")
    assert [r.throughput_rps for r in RunStore(local).read_meta().burn_in] == [[60.0, 61.0, 60.5]]
    assert len(loadgen.steps_from_log(seen_before_next[0])) == 1  # step 0 on the log at once
    assert [s.step_id for s in loadgen.steps_from_log(out.getvalue())] == [
        "000-torchserve-rest-json",
        "001-torchserve-rest-json",
    ]


def test_a_job_killed_at_its_deadline_loses_no_finished_step(tmp_path: Path) -> None:
    """The followed log of a Job killed mid-step: no results tar, two finished steps."""
    from servecmp.results.store import RunStore

    log = "\n".join(
        [
            "starting",
            loadgen.STEP_MARK + _step(0).model_dump_json(),
            "000-...: 10 req/s",
            loadgen.STEP_MARK + _step(1).model_dump_json(),
            "step 2 running ...",
        ]
    )
    run_dir = tmp_path / "kind-run"
    with pytest.raises(ValueError, match="markers"):
        loadgen.extract_results(log, tmp_path / "x")
    assert loadgen.merge_run(run_dir, tmp_path / "x" / "run", log) == 2
    assert [s.concurrency for s in RunStore(run_dir).read_steps().steps] == [1, 2]
    # `kind load` merging the followed log: tests/test_kind_commands.py


# ---- item 8: memory from measured RSS; no TensorFlow where it is not needed -----------------------
@pytest.mark.parametrize(
    "target",
    [
        "torchserve-rest-json",
        "torchserve-grpc-bytes",
        "tfserving-rest-json",
        "tfserving-grpc-tensorproto",
    ],
)
def test_job_memory_covers_the_measured_step_peak(target: str) -> None:
    exp = load_experiment(QUICK)
    t = next(x for x in exp.targets if x.name == target)
    _, job = _render(target, QUICK)
    (c,) = job["spec"]["template"]["spec"]["containers"]
    mem = c["resources"]["limits"]["memory"]
    assert c["resources"]["requests"] == c["resources"]["limits"] and mem.endswith("Mi")
    peak = loadgen.STEP_PEAK_RSS_MIB[loadgen.client_of(t)]
    assert int(mem[:-2]) >= (peak + loadgen.PARENT_RSS_MIB) * 1.25, (target, mem)


def test_steps_engine_refuses_locust_only_options() -> None:
    with pytest.raises(ValueError, match="--duration: only with --engine locust"):
        _render("torchserve-rest-json", QUICK, duration=30)
    docs = _render(
        "torchserve-rest-json",
        QUICK,
        engine="locust",
        duration=30,
        users=2,
        workers=2,
        locustfile="open_loop",
    )
    assert [d["kind"] for d in docs] == ["ConfigMap", "Service", "Job", "Job"]
    master = docs[2]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "locustfiles/open_loop.py" in master and "30" in master and "2" in master


@pytest.mark.slow
def test_measured_step_peak_still_holds_and_rest_steps_do_not_import_tensorflow() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import measure_step_memory as m
    finally:
        sys.path.pop(0)
    got = m.measure("torchserve", "rest", "json", "resnet", 16)
    print(json.dumps(got))
    assert got["tensorflow"] is False, "a TorchServe REST step imported TensorFlow"
    ts_rest = loadgen.client_of(Target(server="torchserve", protocol="rest"))
    assert got["peak_rss_mib"] <= loadgen.STEP_PEAK_RSS_MIB[ts_rest] * 1.2, got


@pytest.mark.parametrize(
    ("url", "unread"),
    [("http://servecmp-torchserve-metrics.servecmp.svc:8082/metrics", ""), ("", "2 replicas x")],
)
def test_the_jobs_shell_command_hands_the_metrics_page_to_servecmp_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, unread: str
) -> None:
    """The Job's own `sh -c` line, run with its own environment, reaches the real `servecmp
    steps` parser with the metrics URL or the reason it is not read (an empty one as no
    value); `servecmp steps` hands both to every step."""
    import servecmp.load.engine as engine
    import servecmp.load.engine.burnin as burnin
    from servecmp import cli

    job = loadgen.load_job(
        load_experiment(QUICK),
        "torchserve-rest-json",
        run_id="kind-x",
        address="svc.servecmp.svc:8080",
        image="servecmp/loadgen:abc",
        namespace="servecmp",
        experiment_text=QUICK.read_text(),
        server_metrics=(url, unread),
    )
    (master,) = [d for d in loadgen.manifests(job) if d["kind"] == "Job"]
    (c,) = master["spec"]["template"]["spec"]["containers"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "servecmp"  # prints what the real parser made of its arguments
    shim.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c 'import json, sys; from servecmp.cli import "
        "build_parser; print(json.dumps(vars(build_parser().parse_args(sys.argv[1:])), "
        'default=str))\' "$@"\n'
    )
    shim.chmod(0o755)
    env = {e["name"]: e["value"] for e in c["env"]}
    env |= {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(c["command"], env=env, capture_output=True, text=True, timeout=60)
    args = json.loads(proc.stdout.splitlines()[0])
    assert (args["server_metrics_url"], args["server_metrics_unread"]) == (url, unread)

    seen: dict[str, object] = {}
    monkeypatch.setattr(burnin, "run_burn_in", lambda *a, **k: None)
    monkeypatch.setattr(engine, "run_target", lambda *a, **kw: seen.update(kw) or [])
    argv = ["steps", str(QUICK), "--target", "torchserve-rest-json", "--address", "127.0.0.1:1"]
    argv += ["--out", str(tmp_path / "run"), "--server-metrics-url", url]
    assert cli.main([*argv, "--server-metrics-unread", unread]) == 0
    assert seen["server_metrics_url"] == (url or None)
    assert seen["server_metrics_unread"] == (unread or None)
