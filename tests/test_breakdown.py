"""The latency breakdown (servecmp/results/breakdown.py) from synthetic counter series: parts
read as window deltas, "not reported" never zero, and the self-check that flags a server whose
own time exceeds what the client saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from servecmp.results import breakdown as bd
from servecmp.servers import registry
from servecmp.servers.kserve import metrics as ks_m
from servecmp.servers.tfserving import metrics as tfs_m
from servecmp.servers.torchserve import metrics as ts_m

HERE = Path(__file__).resolve().parent
TS_PAGE = (HERE / "promtool" / "torchserve-0.12.0-metrics.txt").read_text()


def ts_page(requests: float, latency_us: float, queue_us: float) -> str:
    """TorchServe 0.12's exposition (the captured page's lines) with other values."""
    return (
        "# TYPE ts_inference_requests_total counter\n"
        f'ts_inference_requests_total{{model_name="m",model_version="default",hostname="h",}} {requests}\n'
        "# TYPE ts_inference_latency_microseconds counter\n"
        f'ts_inference_latency_microseconds{{model_name="m",model_version="default",hostname="h",}} {latency_us}\n'
        "# TYPE ts_queue_latency_microseconds counter\n"
        f'ts_queue_latency_microseconds{{model_name="m",model_version="default",hostname="h",}} {queue_us}\n'
    )


TS_PARTS = ts_m.METRICS.breakdown
TS_SERIES = bd.all_series(TS_PARTS)


def _ts_reading(requests: float, latency_us: float, queue_us: float) -> dict[str, float]:
    return bd.read_counters(ts_page(requests, latency_us, queue_us), TS_SERIES)


def _client(mean_ms: float, n: int = 400, sd_ms: float = 1.0, in_flight: int = 1) -> bd.ClientSide:
    return bd.ClientSide(mean_ms=mean_ms, sd_ms=sd_ms, n=n, in_flight=in_flight)


def _ts(client: bd.ClientSide, readings, protocol: str = "rest"):  # type: ignore[no-untyped-def]
    out = bd.compute(
        TS_PARTS,
        server_label="TorchServe 0.12",
        protocol=protocol,
        client=client,
        readings=readings,
    )
    assert out is not None
    return out, {p.part: p for p in out.parts}


def test_the_captured_torchserve_page_reads_every_declared_series() -> None:
    got = bd.read_counters(TS_PAGE, TS_SERIES)
    assert got == {
        "ts_inference_requests_total": 5.0,
        "ts_inference_latency_microseconds": pytest.approx(59319.398),
        "ts_queue_latency_microseconds": pytest.approx(4186.175),
    }


def test_torchserve_parts_are_window_deltas_and_sum_to_the_client_mean() -> None:
    # 400 requests in the window: 4 ms each in the server, 1 ms of it queued; the client saw 5 ms
    start = _ts_reading(1000, 9_000_000, 500_000)
    end = _ts_reading(1400, 9_000_000 + 400 * 4000, 500_000 + 400 * 1000)
    out, parts = _ts(_client(5.0), [(start, end)])
    assert out.flagged is None and out.means_only
    assert out.server_total_ms == pytest.approx(4.0)
    assert parts["queue"].ms == pytest.approx(1.0)
    assert parts["compute"].ms == pytest.approx(3.0)
    assert parts["outside"].ms == pytest.approx(1.0)
    assert parts["pre_post"].ms is None
    assert parts["pre_post"].why == "not reported by TorchServe 0.12"
    assert sum(p.ms or 0.0 for p in out.parts) == pytest.approx(5.0)


def test_several_windows_add_their_deltas() -> None:
    a = _ts_reading(0, 0, 0)
    b = _ts_reading(100, 100 * 2000, 0)
    c = _ts_reading(150, 150 * 2000, 0)  # the reading gap between windows is not counted
    d = _ts_reading(250, 150 * 2000 + 100 * 4000, 0)
    out, _ = _ts(_client(10.0), [(a, b), (c, d)])
    assert out.server_total_ms == pytest.approx(3.0)  # (200 ms + 400 ms) / 200 requests
    assert out.server_requests == 200


def test_an_inflated_server_time_trips_the_self_check_and_outside_is_left_out() -> None:
    start = _ts_reading(0, 0, 0)
    end = _ts_reading(400, 400 * 9000, 400 * 1000)  # 9 ms per request claimed by the server
    out, parts = _ts(_client(5.0, n=400, sd_ms=1.0, in_flight=1), [(start, end)])
    assert out.flagged is not None and "exceeds what the client saw" in out.flagged
    assert parts["outside"].ms is None  # never a negative bar


def test_a_server_time_within_noise_of_the_client_is_not_flagged() -> None:
    # 0.1 ms over a 5 ms client mean, with 3 standard errors of 0.15 ms plus the edge term
    start = _ts_reading(0, 0, 0)
    end = _ts_reading(100, 100 * 5100, 0)
    out, parts = _ts(_client(5.0, n=100, sd_ms=0.5, in_flight=1), [(start, end)])
    assert out.flagged is None
    assert parts["outside"].ms == 0.0


def test_torchserve_grpc_has_no_breakdown_rather_than_zeros() -> None:
    start = _ts_reading(0, 0, 0)
    end = _ts_reading(100, 0, 0)  # gRPC requests are counted, their latency is not (GRPCJob)
    out, _ = _ts(_client(5.0), [(start, end)], protocol="grpc")
    assert all(p.ms is None for p in out.parts)
    assert out.not_reported == "not reported by TorchServe 0.12 over grpc"


def test_a_restarted_server_makes_the_read_unusable() -> None:
    out, _ = _ts(_client(5.0), [(_ts_reading(500, 1e6, 1e5), _ts_reading(10, 2e4, 1e3))])
    assert out.not_reported is not None and "went backwards" in out.not_reported
    assert all(p.ms is None for p in out.parts)


def test_tfserving_queue_is_not_reported_without_batching_and_pre_post_is_the_rest() -> None:
    labels = 'model_name="m",API="predict",entrypoint="REST"'
    rt = 'model_name="m",API="Predict",runtime="TF1"'

    def page(n: int, req_us: float, run_us: float) -> str:
        return (
            "# TYPE :tensorflow:serving:request_latency histogram\n"
            f":tensorflow:serving:request_latency_sum{{{labels}}} {req_us:.6g}\n"
            f":tensorflow:serving:request_latency_count{{{labels}}} {n}\n"
            # a readiness GET (API="") must not count
            ':tensorflow:serving:request_latency_sum{model_name="m",API="",entrypoint="REST"} 9e9\n'
            ':tensorflow:serving:request_latency_count{model_name="m",API="",entrypoint="REST"} 7\n'
            "# TYPE :tensorflow:serving:runtime_latency histogram\n"
            f":tensorflow:serving:runtime_latency_sum{{{rt}}} {run_us:.6g}\n"
            f":tensorflow:serving:runtime_latency_count{{{rt}}} {n}\n"
        )

    series = bd.all_series(tfs_m.METRICS.breakdown)
    a = bd.read_counters(page(10, 10 * 3000, 10 * 2000), series)
    b = bd.read_counters(page(210, 210 * 3000, 210 * 2000), series)
    out = bd.compute(
        tfs_m.METRICS.breakdown,
        server_label="TF Serving 2.20",
        protocol="rest",
        client=_client(4.0, n=200),
        readings=[(a, b)],
    )
    assert out is not None and out.flagged is None and not out.means_only
    parts = {p.part: p for p in out.parts}
    assert parts["queue"].ms is None
    assert parts["queue"].why is not None
    assert parts["queue"].why.startswith("not reported by TF Serving 2.20")
    assert parts["compute"].ms == pytest.approx(2.0, rel=1e-3)
    assert parts["pre_post"].ms == pytest.approx(1.0, rel=1e-2)
    assert parts["outside"].ms == pytest.approx(1.0, rel=1e-2)


def test_kserve_total_is_its_three_stages() -> None:
    def page(n: int, pre: float, pred: float, post: float) -> str:
        lines = []
        for name, v in (
            ("request_preprocess_seconds", pre),
            ("request_predict_seconds", pred),
            ("request_postprocess_seconds", post),
        ):
            lines += [
                f"# TYPE {name} histogram",
                f'{name}_sum{{model_name="m"}} {v}',
                f'{name}_count{{model_name="m"}} {n}',
            ]
        return "\n".join(lines) + "\n"

    series = bd.all_series(ks_m.METRICS.breakdown)
    a = bd.read_counters(page(0, 0, 0, 0), series)
    b = bd.read_counters(page(100, 0.01, 0.2, 0.01), series)
    out = bd.compute(
        ks_m.METRICS.breakdown,
        server_label="KServe 0.21",
        protocol="grpc",
        client=_client(3.0, n=100),
        readings=[(a, b)],
    )
    assert out is not None
    parts = {p.part: p for p in out.parts}
    assert out.server_total_ms == pytest.approx(2.2)
    assert parts["pre_post"].ms == pytest.approx(0.2)
    assert parts["compute"].ms == pytest.approx(2.0)
    assert parts["outside"].ms == pytest.approx(0.8)
    assert parts["queue"].ms is None and parts["queue"].why == "not reported by KServe 0.21"


def test_in_process_baselines_are_compute_only() -> None:
    for name in ("pytorch", "tensorflow"):
        out = bd.compute(
            registry.get(name).breakdown(),
            server_label=registry.get(name).label,
            protocol="inprocess",
            client=_client(2.5),
            readings=None,
        )
        assert out is not None
        parts = {p.part: p for p in out.parts}
        assert parts["compute"].ms == 2.5
        assert all(parts[p].ms is None for p in ("outside", "queue", "pre_post"))


def test_every_server_declares_a_total_and_known_parts() -> None:
    for a in registry.servers():
        parts = a.breakdown()
        assert "total" in parts, a.name
        assert set(parts) <= {"total", "queue", "pre_post", "compute"}, a.name


def test_every_server_gives_a_breakdown_for_each_of_its_protocols() -> None:
    """A step asks for its own protocol's parts (step.py, judge.py): every adapter answers,
    with a total (its ``protocols`` may leave this one out) or, in-process, the client's clock."""
    for a in registry.adapters():
        for spec in a.protocols:
            parts = a.breakdown(spec.protocol.value)
            assert set(parts) <= {"total", "queue", "pre_post", "compute"}, a.name
            total = parts.get("total")
            assert total is not None or a.is_inprocess, a.name


def test_tfserving_with_batching_takes_the_queue_out_of_the_runtime() -> None:
    """predict_util.cc times session->Run, which with batching on is BatchingSession::Run: the
    batch queue is inside runtime_latency (batching_session.cc), so compute = runtime - queue
    and pre/post = request - runtime."""
    lab = 'model_name="m",API="Predict",entrypoint="GRPC"'
    rt = 'model_name="m",API="Predict",runtime="TF1"'

    def page(n: int) -> str:
        q = ":tensorflow:serving:batching_session:queuing_latency"
        return (
            f":tensorflow:serving:request_latency_sum{{{lab}}} {n * 10000}\n"
            f":tensorflow:serving:request_latency_count{{{lab}}} {n}\n"
            f":tensorflow:serving:runtime_latency_sum{{{rt}}} {n * 7000}\n"
            f":tensorflow:serving:runtime_latency_count{{{rt}}} {n}\n"
            f'{q}_sum{{thread_pool_name="batch_threads"}} {n * 3000}\n'
            f'{q}_count{{thread_pool_name="batch_threads"}} {n}\n'
        )

    series = bd.all_series(tfs_m.METRICS.breakdown)
    out = bd.compute(
        tfs_m.METRICS.breakdown,
        server_label="TF Serving 2.20",
        protocol="grpc",
        client=_client(12.0, n=100),
        readings=[(bd.read_counters(page(0), series), bd.read_counters(page(100), series))],
    )
    assert out is not None and out.flagged is None
    parts = {p.part: p.ms for p in out.parts}
    assert parts == pytest.approx({"outside": 2.0, "queue": 3.0, "pre_post": 3.0, "compute": 4.0})


def test_a_server_count_that_is_not_the_clients_requests_is_flagged() -> None:
    """KServe with several REST workers: each process has its own registry and a scrape sees
    one of them, so the deltas may count another process's requests. Consistent times, but a
    request count far from the client's: flagged rather than trusted."""
    start = _ts_reading(0, 0, 0)
    end = _ts_reading(150, 150 * 4000, 150 * 1000)  # the client saw 400 requests
    out, _ = _ts(bd.ClientSide(mean_ms=5.0, sd_ms=1.0, n=400, in_flight=2, completed=400), [(start, end)])  # fmt: skip
    assert out.flagged is not None and "do not cover these requests" in out.flagged
    # failed requests the server counted too are not a mismatch
    end = _ts_reading(410, 410 * 4000, 410 * 1000)
    out, _ = _ts(bd.ClientSide(mean_ms=5.0, sd_ms=1.0, n=390, in_flight=2, completed=410), [(start, end)])  # fmt: skip
    assert out.flagged is None


def test_the_recorder_reads_the_server_at_each_measured_windows_edges_only() -> None:
    from servecmp.load.engine.recorder import WindowRecorder

    reads: list[int] = []

    def read() -> dict[str, float]:
        reads.append(1)
        if len(reads) == 3:
            raise ConnectionError("metrics page refused")
        return {"x": float(len(reads))}

    rec = WindowRecorder(server_read=read)
    rec.open_window(warmup=True)
    rec.close_window(warmup=True)
    assert reads == []  # warm-up windows are not read
    rec.open_window()
    w = rec.close_window()
    assert (w.server_counters_start, w.server_counters_end) == ({"x": 1.0}, {"x": 2.0})
    rec.open_window()
    w = rec.close_window()
    assert w.server_read_error == "ConnectionError: metrics page refused"
    assert w.server_counters_end is None  # after a failed read the window is not read again
    assert len(reads) == 3


def test_a_stale_page_is_said_to_be_stale_not_blamed_on_the_server() -> None:
    """A page whose counters never moved while the client had 400 answers (a cached or frozen
    page, or another process's) is no reading of these windows: the breakdown says the page was
    stale; before, its parts read "not reported by TorchServe", as if the server kept no count."""
    frozen = _ts_reading(1000, 9_000_000, 500_000)
    out, parts = _ts(_client(5.0), [(frozen, dict(frozen)), (frozen, dict(frozen))])
    assert out.not_reported is not None and "stale" in out.not_reported, out
    assert all(p.ms is None for p in parts.values())
    assert "not reported by TorchServe" not in (parts["compute"].why or "")
    # a window too short to expect any answer inside its edges is not called stale
    out, _ = _ts(_client(5.0, n=3), [(frozen, dict(frozen))])
    assert out.not_reported is None


def test_a_step_told_why_the_page_is_not_read_says_so_in_its_breakdown() -> None:
    """The kind path with several replicas behind one metrics Service reads no page
    (servecmp/cluster/commands.py server_metrics): the step's breakdown carries the reason
    instead of being absent, and a step with neither a page nor a reason has none."""
    from servecmp.experiment import Load, Target
    from servecmp.load.engine.judge import step_breakdown
    from servecmp.load.engine.measure import Reported
    from servecmp.load.engine.recorder import Window
    from servecmp.load.engine.spec import StepSpec

    w = Window(index=0, start=0.0, end=1.0, ok=3, samples=[4.0, 5.0, 6.0], completed=3)
    rep = Reported.of([w], 1, server_watched=False)

    def spec(**kw: object) -> StepSpec:
        return StepSpec(
            run_id="t",
            step_id="s",
            target=Target(server="torchserve", protocol="rest"),  # type: ignore[arg-type]
            address="svc.servecmp.svc:8080",
            cluster_mode=True,
            sweep="closed_loop",
            mode="closed_loop",
            concurrency=1,
            load=Load(),
            **kw,  # type: ignore[arg-type]
        )

    why = "2 replicas behind one metrics Service: each read reaches one pod"
    b = step_breakdown(spec(server_metrics_unread=why), rep, open_loop=False)
    assert b is not None and b.not_reported == f"server counters not read: {why}"
    assert b.client_mean_ms == pytest.approx(5.0) and all(p.ms is None for p in b.parts)
    assert step_breakdown(spec(), rep, open_loop=False) is None
