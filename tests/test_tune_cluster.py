"""The cluster path of `servecmp tune`: a candidate is rolled out with `helm upgrade` carrying its
own generated configs, waited for, and measured by the in-cluster step engine (scripts/kind-load.sh).

Here it runs through the kind dry-run shims (tests/kind_dryrun: recording fakes of kind, kubectl,
helm and docker; the repository's Python modules run for real): the commands and files are
checked, the step comes from the fake Job log. For real it needs kind (skipped here, with why).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from kind_dryrun.recording import copy_script_checkout

from servecmp.experiment import load_experiment
from servecmp.tune import space as sp
from servecmp.tune.cluster import ClusterMeasurer, unavailable_reason

ROOT = Path(__file__).resolve().parents[1]
DRY = ROOT / "tests" / "kind_dryrun"


@pytest.fixture()
def checkout(tmp_path: Path) -> Path:
    return copy_script_checkout(ROOT, tmp_path / "a checkout")


def _step(**over: object) -> object:
    from servecmp.results.schema import LatencySummary, StepResult

    fields: dict = dict(
        run_id="kind-x",
        step_id="000-torchserve-rest-json-closed_loop-c1",
        index=0,
        target="torchserve-rest-json",
        server="torchserve",
        protocol="rest",
        encoding="json",
        sweep="closed_loop",
        mode="closed_loop",
        concurrency=1,
        started_at="2026-01-01T00:00:00Z",
        warmup_s=1,
        window_s=1,
        stop_reason="stable",
        ok=400,
        requests=400,
        throughput_rps=40.0,
        achieved_rps=40.0,
        latency_ms=LatencySummary(count=400, mean=24.0, p50=23.0, p99=41.0),
    )
    fields.update(over)
    return StepResult(**fields)


# what the Job printed -> (level valid, meets the SLO, the candidate's score)
def _breakdown() -> object:
    from servecmp.results.schema import Breakdown, BreakdownPart

    return Breakdown(
        client_mean_ms=24.0,
        client_n=400,
        server_total_ms=20.0,
        parts=[
            BreakdownPart(part="outside", ms=4.0, source="client mean - total"),
            BreakdownPart(part="compute", ms=20.0, source="ts_inference_latency_microseconds"),
        ],
    )


CASES = {
    # the in-cluster step read the server's counters: its breakdown reaches the level
    "measured": (_step(breakdown=_breakdown()), True, True, 40.0),
    # every answer wrong: no throughput, nothing to rank the candidate by
    "zero throughput": (
        _step(
            ok=0,
            wrong_answers=400,
            throughput_rps=0.0,
            latency_ms={"count": 400, "p50": 23.0, "p99": 41.0},
        ),
        True,
        False,
        0.0,
    ),
    "invalid": (_step(valid=False, invalid_reason="generator saturated"), False, False, 0.0),
}


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", sorted(CASES))
def test_candidate_rolled_out_by_helm_upgrade_and_measured_in_cluster(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    from servecmp.cluster.loadgen import STEP_MARK

    step, valid, slo_ok, score = CASES[case]
    py = tmp_path / "py"
    py.write_text(
        f"#!/bin/bash\nexec {shlex.quote(str(ROOT / '.venv' / 'bin' / 'python'))} "
        f'{shlex.quote(str(DRY / "shim.py"))} "$@"\n'
    )
    py.chmod(0o755)
    line = tmp_path / "step-line.txt"
    line.write_text(STEP_MARK + step.model_dump_json() + "\n")  # type: ignore[attr-defined]
    for k, v in {
        "PATH": f"{DRY / 'bin'}:/usr/bin:/bin",
        "DRYRUN_LOG": str(tmp_path / "calls.log"),
        "DRYRUN_STEP_LINE": str(line),
        "SERVECMP_PYTHON": str(py),
        "SERVECMP_HELM": str(DRY / "bin" / "helm"),
        "DRYRUN_CLUSTER": "1",
    }.items():
        monkeypatch.setenv(k, v)

    exp = load_experiment(checkout / "loadtests" / "experiments" / "quick.yaml")
    tune_dir = tmp_path / "tune"
    cand = sp.candidate(
        "torchserve",
        {
            "tuning.workers": 2,
            "tuning.intra_op_threads": 1,
            "tuning.io_threads": 4,
            "tuning.batching.enabled": False,
        },
    )
    m = ClusterMeasurer(exp, tune_dir, root=checkout).measure(cand, "screen", 0)

    calls = [shlex.split(c) for c in (tmp_path / "calls.log").read_text().splitlines()]
    ups = [c for c in calls if c[:2] == ["helm", "upgrade"]]
    assert len(ups) == 1 and "--reuse-values" in ups[0]
    up = ups[0]
    files = dict(up[i + 1].split("=", 1) for i, a in enumerate(up) if a == "--set-file")
    props = next(Path(v) for v in files.values() if v.endswith("config.properties")).read_text()
    assert "default_workers_per_model=2" in props and "number_of_netty_threads=4" in props
    values = Path(up[up.index("-f") + 1]).read_text()
    assert "OMP_NUM_THREADS: '1'" in values or 'OMP_NUM_THREADS: "1"' in values
    wait = next(i for i, c in enumerate(calls) if "servecmp.cluster.cluster" in c and "wait" in c)
    # the load: scripts/kind-load.sh hands over to `servecmp kind load <experiment>`,
    # which applies the Job (kubectl apply) for the candidate's experiment
    load = next(i for i, c in enumerate(calls) if c[2:5] == ["servecmp.cli", "kind", "load"])
    job = next(i for i, c in enumerate(calls) if c[:1] == ["kubectl"] and "apply" in c and i > load)
    assert calls.index(up) < wait < load < job  # rolled out and ready before the load Job
    assert calls[load][calls[load].index("load") + 1].endswith(
        f"{cand.id}-screen-r0/experiment.yaml"
    )
    (level,) = m.levels
    assert level.param == "concurrency=1" and level.step_id == step.step_id  # type: ignore[attr-defined]
    assert (level.valid, level.slo_ok, m.score_rps) == (valid, slo_ok, score)
    if case == "measured":
        assert level.throughput_rps == 40.0 and level.error_fraction == 0 and m.score_p99_ms == 41.0
        assert level.breakdown == step.breakdown  # type: ignore[attr-defined]


@pytest.mark.cluster
@pytest.mark.slow
def test_tune_on_a_real_kind_cluster(tmp_path: Path) -> None:
    """For real: needs `make kind-up` first (kind, kubectl, helm, docker)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from servecmp.tune import run_tune
    from servecmp.tune.store import TuneStore

    tune_dir = run_tune(
        ROOT / "loadtests" / "experiments" / "quick.yaml",
        budget_minutes=20,
        servers=["torchserve"],
        cluster=True,
        runs_root=tmp_path,
        out=tmp_path / "tuned.yaml",
    )
    ms, _ = TuneStore(tune_dir).read()
    assert ms and all(m.levels for m in ms)
    # a real measurement: valid steps that served answers, and at least one candidate scored
    for m in ms:
        for lv in m.levels:
            assert lv.valid and lv.throughput_rps > 0 and lv.error_fraction == 0, (m.label, lv)
    assert max(m.score_rps for m in ms) > 0
    assert (tmp_path / "tuned.yaml").is_file()
