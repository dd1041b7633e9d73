"""The between-run component tau (servecmp/report/between_run.py, scripts/between_run.py): its
estimate from recorded pairs of runs, the stored value's provenance, and bad input."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from servecmp.report.between_run import Term, estimate, fixture_pair, terms
from servecmp.report.stats import BETWEEN_RUN

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = sorted((ROOT / "tests" / "data").glob("verdict_reproduction*.json"))


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "between_run", ROOT / "scripts" / "between_run.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["between_run"] = mod
    spec.loader.exec_module(mod)
    return mod


def _rec(key: str, metric: str, ratios: list[float]) -> dict:
    return {
        "key": key,
        "metric": metric,
        "values": [10.0, 10.0 * ratios[0]],
        "rounds": {str(i): [10.0, 10.0 * r] for i, r in enumerate(ratios)},
        "noise": [0.0, 0.0],
    }


def test_the_stored_tau_is_what_the_recorded_pairs_give() -> None:
    """stats.BETWEEN_RUN states its provenance: every recorded pair, recomputed here."""
    assert len(FIXTURES) == BETWEEN_RUN.pairs
    found = [t for f in FIXTURES for t in terms(*fixture_pair(f), f.name)]
    est = estimate(found)
    assert est.comparisons == BETWEEN_RUN.comparisons and est.pairs == BETWEEN_RUN.pairs
    assert est.tau == pytest.approx(BETWEEN_RUN.tau, abs=5e-5)
    assert est.low == pytest.approx(BETWEEN_RUN.low, abs=5e-5)
    assert est.high == pytest.approx(BETWEEN_RUN.high, abs=5e-5)
    assert est.low <= est.tau <= est.high


def test_the_estimate_recovers_a_between_run_shift_on_synthetic_runs() -> None:
    """Runs whose every verdict shifts by N(0, tau) between runs, on top of within-run noise of
    4 % over 5 rounds: the estimate finds tau = 6 % (simulated 40 times: mean 6.0 %, sd 0.3 %)
    and, without a shift, a small tau (it errs high there: mean 1.0 %, sd 0.2 %)."""
    rng = np.random.default_rng(7)
    for tau_true in (0.0, 0.06):
        found = []
        for p in range(30):
            for k in range(6):
                runs = []
                for _ in range(2):
                    centre = -0.2 + rng.normal(0.0, tau_true)
                    runs.append(
                        [
                            _rec(
                                f"q{k}",
                                "latency_p50_ms",
                                list(np.exp(centre + rng.normal(0, 0.04, 5))),
                            )
                        ]
                    )
                found += terms(runs[0], runs[1], f"p{p}")
        est = estimate(found)
        assert est.comparisons == 180 and est.pairs == 30
        if tau_true:
            assert est.tau == pytest.approx(tau_true, abs=0.012) and est.low > 0.03
        else:
            assert est.tau < 0.02


def test_terms_take_paired_summary_verdicts_only() -> None:
    first = [
        _rec("a", "throughput_rps", [1.1, 1.2, 1.15]),
        _rec("b", "latency_p99_ms", [0.9]),  # one round: no paired estimate
        {"key": "friction/x", "metric": "cold_start_ready_s", "friction": [{}, {}]},
    ]
    second = [_rec("a", "throughput_rps", [1.0, 1.05, 1.1]), _rec("b", "latency_p99_ms", [0.8])]
    (t,) = terms(first, second, "p")
    assert isinstance(t, Term) and t.key == "a" and t.family == "throughput"
    d1, d2 = np.log([1.1, 1.2, 1.15]), np.log([1.0, 1.05, 1.1])
    assert t.shift == pytest.approx(d1.mean() - d2.mean())
    assert t.within == pytest.approx(d1.var(ddof=1) / 3 + d2.var(ddof=1) / 3)


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "one.json"
    bad.write_text(json.dumps({"runs": [{"run": "x", "verdicts": []}]}))
    with pytest.raises(ValueError, match=r"one\.json: field 'runs' expected a list of two runs"):
        fixture_pair(bad)
    bad.write_text(json.dumps({"runs": [{"verdicts": []}, {"verdicts": {}}]}))
    with pytest.raises(ValueError, match=r"field 'runs\[1\]\.verdicts' expected a list"):
        fixture_pair(bad)
    broken = _rec("grpc/p50", "latency_p50_ms", [1.0, 1.1])
    broken["rounds"]["1"] = [10.0, -1.0]
    with pytest.raises(
        ValueError, match=r"p: grpc/p50: rounds\['1'\] expected \[a, b\], two positive"
    ):
        terms([broken], [_rec("grpc/p50", "latency_p50_ms", [1.0, 1.1])], "p")
    with pytest.raises(ValueError, match="at least 2 verdicts"):
        estimate([])


def test_the_script_prints_tau_and_the_leave_one_out_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mod = _script()
    assert mod.main([str(f) for f in FIXTURES]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pooled: tau = {BETWEEN_RUN.tau:.2%}")
    for family in ("throughput", "p50", "p99"):
        assert f"  {family} " in out
    assert (
        "a tau per family against one pooled: likelihood ratio 1.76 on 2 df, p = 0.42 (pool)" in out
    )
    loo = out.split("leave one out")[1].splitlines()[1:]
    assert len(loo) == len(FIXTURES)
    assert all(ln.endswith("disagreements: none") for ln in loo), loo
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert mod.main([str(bad)]) == 2
    assert "x.json: field 'runs' expected" in capsys.readouterr().err
    assert math.isfinite(BETWEEN_RUN.tau)
