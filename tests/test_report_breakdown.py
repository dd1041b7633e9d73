"""The report's "Where the time goes" and "CPU per request" sections, from stored results: the
numbers are the stored breakdowns (median over comparable repeats), parts not reported say so,
a flagged self-check is shown as such, and CPU per 1,000 requests is the stored arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.report_runs import make_run
from test_report import md_tables

from servecmp.report.build import build_report
from servecmp.results import RunStore
from servecmp.results.schema import Breakdown, BreakdownPart

pytestmark = pytest.mark.usefixtures("test_registry")


def _bd(client: float, outside: float | None, queue: float, compute: float, flagged: str | None = None) -> Breakdown:  # fmt: skip
    return Breakdown(
        client_mean_ms=client,
        client_n=400,
        noise_ms=0.1,
        server_total_ms=queue + compute,
        total_source="ts_inference_latency_microseconds",
        means_only=True,
        flagged=flagged,
        parts=[
            BreakdownPart(part="outside", ms=outside, source="client mean - total", kind="derived",
                          why=None if outside is not None else "left out: the self-check failed"),
            BreakdownPart(part="queue", ms=queue, source="ts_queue_latency_microseconds"),
            BreakdownPart(part="pre_post", ms=None, source="", why="not reported by TorchServe 0.12"),
            BreakdownPart(part="compute", ms=compute, source="total - queue", kind="derived"),
        ],
    )  # fmt: skip


@pytest.fixture()
def run(tmp_path: Path) -> Path:
    d = make_run(tmp_path / "run-bd")
    path = RunStore(d).steps_path
    lines = []
    for line in path.read_text().splitlines():
        s = json.loads(line)
        if s["target"] == "torchserve-rest-json" and s["valid"]:
            s["breakdown"] = _bd(10.0, 4.0, 1.0, 5.0).model_dump(mode="json")
        if s["target"] == "torchserve-grpc-bytes" and s["valid"]:
            s["breakdown"] = _bd(
                5.0, None, 1.0, 9.0, flagged="TorchServe's own time exceeds what the client saw"
            ).model_dump(mode="json")
        lines.append(json.dumps(s))
    path.write_text("\n".join(lines) + "\n")
    return d


def test_breakdown_table_sentence_and_flag(run: Path) -> None:
    paths = build_report(run)
    md, html = paths.markdown.read_text(), paths.html.read_text()
    rows = md_tables(md)["Breakdown per target and load level"]
    head, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(head)}
    json_rows = [r for r in body if r[0] == "torchserve-rest-json"]
    assert json_rows
    for r in json_rows:
        assert r[col["outside the server"]] == "4 ms (40%)"
        assert r[col["queue"]] == "1 ms (10%)"
        assert r[col["model compute"]] == "5 ms (50%)"
        assert r[col["pre/post-processing"]] == "not reported by TorchServe 0.12"
        assert r[col["self-check"]] == "ok"
    flagged = [r for r in body if r[0] == "torchserve-grpc-bytes"]
    assert flagged and all(r[col["self-check"]].startswith("FLAGGED") for r in flagged)
    assert all(r[col["outside the server"]] == "left out: the self-check failed" for r in flagged)
    assert (
        "torchserve-rest-json at concurrency 4: 50% of the client's 10 ms mean is model compute"
        in md
    )
    assert "torchserve-grpc-bytes: no split stated — the self-check failed" in md
    assert 'id="plot-breakdown"' in html and "torchserve-grpc-bytes \\u26a0 self-check" in html


def test_cpu_per_request_is_server_cpu_seconds_per_thousand_ok(run: Path) -> None:
    md = build_report(run).markdown.read_text()
    rows = md_tables(md)
    table = next(v for k, v in rows.items() if k.startswith("CPU-seconds per 1,000"))
    steps = [
        s
        for s in RunStore(run).read_steps().steps
        if s.target == "tfserving-rest-json" and s.concurrency == 1 and s.comparable
    ]
    assert steps and steps[0].generator is not None
    g = steps[0].generator
    assert g.server_cpu_fraction is not None
    expected = g.server_cpu_fraction * steps[0].measured_s / steps[0].ok * 1000
    row = next(r for r in table if r[0] == "tfserving-rest-json")
    assert row[1] == f"{expected:.3g}"


def test_event_timelines_one_chart_per_event_kind_with_each_servers_summary(run: Path) -> None:
    from servecmp.results.friction import append_friction, record
    from servecmp.run.timeline import event_timeline

    class S:
        def __init__(self, t: float, ok: bool, done: float) -> None:
            self.t, self.ok, self.done = t, ok, done

    for server, stall in (("torchserve", 0.5), ("tfserving", 2.0)):
        # TorchServe's baseline drifts (10 -> 13.8 ms): its ratio is not given, and says why
        drift = 0.0002 if server == "torchserve" else 0.0
        samples = [S(t / 10, True, t / 10 + 0.01 + drift * (t + 20)) for t in range(-20, 0)]
        samples += [S(0.0, True, stall)] + [
            S(stall + t / 10, True, stall + t / 10 + 0.01) for t in range(1, 30)
        ]
        tl = event_timeline(samples, 0.0, before_s=2.0, after_s=5.0, event_end=stall)
        tl["load"] = {"rate": 10.0, "concurrency": 1}
        for metric in ("update_s", "recovery_s"):
            append_friction(
                run,
                record(server, metric, stall, details={"event_timeline": tl, "phases_s": {"timeline_added": 3.0}}),
            )  # fmt: skip
    paths = build_report(run)
    md, html = paths.markdown.read_text(), paths.html.read_text()
    assert 'id="plot-timeline-update"' in html and 'id="plot-timeline-recovery"' in html
    table = md_tables(md)["kill and restart"]
    col = {h: i for i, h in enumerate(table[0])}
    rows = {r[0]: r for r in table[1:]}
    assert set(rows) == {"TorchServe", "TF Serving"}  # the test registry's labels
    tfs = rows["TF Serving"]
    assert tfs[col["steady p99"]] == "10 ms"
    assert tfs[col["p99 during the event"]] == "2e+03 ms"
    assert tfs[col["during ÷ steady"]] == "200 x"
    assert tfs[col["steady load"]] == "10.0 req/s, 1 sender(s)"
    assert rows["TorchServe"][col["during ÷ steady"]].startswith("baseline not steady: ")
    assert "The timelines added 12 s of probe time" in md


def test_cost_is_off_without_a_price(run: Path) -> None:
    md = build_report(run).markdown.read_text()
    assert "Off: the experiment gives no price (cost.per_core_hour)." in md


def test_cost_per_million_requests_shows_its_arithmetic(run: Path) -> None:
    import re

    import yaml

    exp_file = run / "experiment.yaml"
    data = yaml.safe_load(exp_file.read_text())
    data["cost"] = {"per_core_hour": 0.04, "currency": "EUR"}
    exp_file.write_text(yaml.safe_dump(data, sort_keys=False))
    md = build_report(run).markdown.read_text()
    table = next(v for k, v in md_tables(md).items() if k.startswith("p99 ≤"))
    col = {h: i for i, h in enumerate(table[0])}
    rows = [r for r in table[1:] if "req/s)" in r[col["best under the SLO"]]]
    assert rows
    for r in rows:
        thr = float(re.search(r"\(([\d.]+) req/s\)", r[col["best under the SLO"]]).group(1))  # type: ignore[union-attr]
        text = r[col["provisioned: cost per million requests"]]
        assert text.startswith("(1 cores * 0.04) EUR/h")  # the experiment's 1-core budget
        stated = float(text.rsplit("=", 1)[1].split()[0])
        assert stated == pytest.approx(0.04 / (thr * 3600) * 1e6, rel=1e-3)


def test_step_windows_are_folded_except_long_open_loop_steps(run: Path) -> None:
    from servecmp.report.data import load_run
    from servecmp.report.tables.step_windows import LONG_STEP_WINDOWS, step_windows

    path = RunStore(run).steps_path
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    long = lines[0]
    long.update(mode="open_loop", sweep="open_loop", rate=50.0, concurrency=None)
    w = long["windows"][0]
    long["windows"] = [
        {**w, "index": k, "server_cpu": 0.5, "server_rss_bytes": 300 * 2**20}
        for k in range(LONG_STEP_WINDOWS)
    ]
    long["reported_windows"] = 2
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    found = step_windows(load_run(run))
    shown = [(line, t) for line, t, open_ in found if open_]
    assert len(shown) == 1 and shown[0][0].startswith(long["step_id"])
    rows = shown[0][1].rows
    assert [r[0] for r in rows] == ["0", "1", "2", "3 (reported)", "4 (reported)"]
    assert rows[0][6:] == ["0.5", "300 MiB"]
    assert len(found) == sum(1 for x in lines if x["windows"])
    md = build_report(run).markdown.read_text()
    assert f"#### {shown[0][0]}" in md


def test_cluster_steps_merged_from_the_load_job_show_their_breakdown(
    run: Path, tmp_path: Path
) -> None:
    """The kind path: the in-cluster Job's steps (here ``run``, as the Job's run directory comes
    back) are merged into the local run directory and reported like local ones, breakdown
    included."""
    from servecmp.cluster.loadgen import merge_run

    local = make_run(tmp_path / "kind-run")
    RunStore(local).steps_path.write_text("")  # the kind run holds only what the Job measured
    assert merge_run(local, run) > 0
    merged = [s for s in RunStore(local).read_steps().steps if s.breakdown is not None]
    assert {s.target for s in merged} == {"torchserve-rest-json", "torchserve-grpc-bytes"}
    md = build_report(local).markdown.read_text()
    table = md_tables(md)["Breakdown per target and load level"]
    assert any(r[0] == "torchserve-rest-json" for r in table[1:]), table
