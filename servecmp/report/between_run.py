"""The between-run component tau, estimated from recorded pairs of runs of one commit.

For each summary verdict measured over paired rounds in both runs of a pair, the two runs'
estimates e1, e2 (mean log-ratio over the rounds) and their squared standard errors se1^2, se2^2
(variance of the log-ratios / rounds) give E[(e1 - e2)^2] = se1^2 + se2^2 + 2 tau^2: one commit,
so the shift's mean is 0. tau is the maximum-likelihood fit of e1 - e2 ~ N(0, se1^2 + se2^2 +
2 tau^2) over the verdicts pooled, with a profile-likelihood interval. Maximum likelihood weighs
each verdict by its own within-run noise; the unweighted moment estimate
(mean (e1 - e2)^2 - mean (se1^2 + se2^2)) / 2 is swamped by the noisiest p99 verdicts (on the
recorded pairs: 2.3 % against 4.3 %). The se^2 rest on 4-5 rounds each and the model takes them
as known, so the estimate errs high near zero: simulated runs with 5 rounds and no between-run
shift gave tau = 1.0 % on average, and the interval then excluded 0 (its lower bound is no
evidence of a shift); with tau = 3 % or 6 % the estimate was unbiased and the 90 % interval held
tau in 36 of 40 simulations. Erring high makes the stable rule stricter. (A Student-t model on
the Welch degrees of freedom erred low instead: 5.2 % for 6 %.) The inputs are the verdict records of
``report/reproduce.py``: a verdict fixture (``scripts/record_verdict_fixture.py``) or two run
directories. ``scripts/between_run.py`` prints the estimate; ``stats.BETWEEN_RUN`` stores the
machine's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

# metric families a summary verdict belongs to
FAMILY = {"throughput_rps": "throughput", "latency_p50_ms": "p50", "latency_p99_ms": "p99"}
CONFIDENCE = 0.90
TAU_MAX = 1.0  # search bound: a log-ratio sd of 1 is a factor e between runs


@dataclass(frozen=True)
class Term:
    """One verdict compared across the two runs of a recorded pair."""

    pair: str
    key: str
    family: str
    shift: float  # e1 - e2 (log-ratio)
    within: float  # se1^2 + se2^2

    @property
    def z(self) -> float:
        """The shift in within-run standard errors (what tau = 0 would make about N(0, 1))."""
        return self.shift / math.sqrt(self.within) if self.within > 0 else math.inf


@dataclass(frozen=True)
class Estimate:
    tau: float
    low: float
    high: float
    confidence: float
    comparisons: int
    pairs: int


def mean_and_se2(rec: dict[str, Any], where: str = "") -> tuple[float, float] | None:
    """(mean log-ratio, its squared standard error) over a record's paired rounds; None with
    fewer than 2 rounds (the fallback rule has no paired estimate)."""
    rounds = rec.get("rounds")
    if not isinstance(rounds, dict):
        return None
    d: list[float] = []
    for r, pair in rounds.items():
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if not ok or not all(isinstance(x, int | float) and x > 0 for x in pair):
            raise ValueError(
                f"{where}{rec.get('key', '?')}: rounds[{r!r}] expected [a, b], two positive "
                f"numbers, got {pair!r}"
            )
        d.append(math.log(pair[1] / pair[0]))
    if len(d) < 2:
        return None
    return float(np.mean(d)), float(np.var(d, ddof=1)) / len(d)


def terms(
    first: Iterable[dict[str, Any]], second: Iterable[dict[str, Any]], pair: str = ""
) -> list[Term]:
    """The paired verdicts both runs measured, in the first run's order."""
    where = f"{pair}: " if pair else ""
    other = {r.get("key"): r for r in second}
    out = []
    for rec in first:
        rec2 = other.get(rec.get("key"))
        if rec2 is None or "friction" in rec or rec.get("metric") not in FAMILY:
            continue
        a, b = mean_and_se2(rec, where), mean_and_se2(rec2, where)
        if a is None or b is None:
            continue
        out.append(Term(pair, rec["key"], FAMILY[rec["metric"]], a[0] - b[0], a[1] + b[1]))
    return out


def _nll(tau: float, shift: np.ndarray, within: np.ndarray) -> float:
    """Negative log-likelihood of the shifts (up to a constant): shift ~ N(0, within + 2 tau^2)."""
    var = within + 2 * tau * tau
    return 0.5 * float(np.sum(np.log(var) + shift * shift / var))


def _data(found: Sequence[Term]) -> tuple[list[Term], tuple[np.ndarray, np.ndarray]]:
    use = [t for t in found if t.within > 0]  # an exact tie in every round has no spread to use
    if len(use) < 2:
        raise ValueError(f"need at least 2 verdicts compared across runs, got {len(use)}")
    return use, (np.array([t.shift for t in use]), np.array([t.within for t in use]))


def _fit(data: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
    """(tau, negative log-likelihood there)."""
    fit = optimize.minimize_scalar(
        _nll, bounds=(0.0, TAU_MAX), args=data, method="bounded", options={"xatol": 1e-7}
    )
    tau, best = float(fit.x), float(fit.fun)
    if _nll(0.0, *data) <= best:  # the bounded search does not try the boundary itself
        tau, best = 0.0, _nll(0.0, *data)
    return tau, best


def families_differ(found: Sequence[Term]) -> tuple[float, int, float]:
    """Whether a tau per metric family fits better than one pooled tau: (likelihood-ratio
    statistic, degrees of freedom, p-value), over the families with >= 2 verdicts."""
    groups = [ts for ts in by_family(found).values() if len(ts) >= 2]
    pooled = _fit(_data([t for ts in groups for t in ts])[1])[1]
    apart = sum(_fit(_data(ts)[1])[1] for ts in groups)
    stat = max(0.0, 2 * (pooled - apart))
    df = len(groups) - 1
    return stat, df, float(sps.chi2.sf(stat, df)) if df > 0 else 1.0


def estimate(found: Sequence[Term], confidence: float = CONFIDENCE) -> Estimate:
    """tau by maximum likelihood with its profile-likelihood interval at ``confidence``, from
    the compared verdicts (at least 2 with a within-run spread)."""
    use, data = _data(found)
    tau, best = _fit(data)
    cut = float(sps.chi2.ppf(confidence, 1)) / 2

    def excess(x: float) -> float:
        return _nll(x, *data) - best - cut

    low = 0.0 if tau == 0.0 or excess(0.0) <= 0 else optimize.brentq(excess, 0.0, tau)
    high = optimize.brentq(excess, tau, TAU_MAX) if excess(TAU_MAX) > 0 else TAU_MAX
    return Estimate(tau, float(low), float(high), confidence, len(use), len({t.pair for t in use}))


def fixture_pair(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The two runs' verdict records of a fixture written by scripts/record_verdict_fixture.py."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable JSON verdict fixture: {err}") from err
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or len(runs) != 2:
        raise ValueError(f"{path}: field 'runs' expected a list of two runs of one commit")
    out = []
    for i, run in enumerate(runs):
        recs = run.get("verdicts") if isinstance(run, dict) else None
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            raise ValueError(f"{path}: field 'runs[{i}].verdicts' expected a list of records")
        out.append(recs)
    return out[0], out[1]


def run_dirs_pair(first: Path, second: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from servecmp.report.data import load_run
    from servecmp.report.reproduce import summary_inputs

    return summary_inputs(load_run(first)), summary_inputs(load_run(second))


def by_family(found: Sequence[Term]) -> dict[str, list[Term]]:
    out: dict[str, list[Term]] = {}
    for t in found:
        out.setdefault(t.family, []).append(t)
    return out
