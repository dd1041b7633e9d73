"""All steps: every stored step with its status, comparable or not."""

from __future__ import annotations

from servecmp.report.cells import not_comparable_reason, param_label, param_of
from servecmp.report.data import RunData
from servecmp.report.format import METRIC_LABEL, fmt
from servecmp.report.table import Table
from servecmp.results.metrics import METRICS

ALL_STEP_METRICS = (
    "throughput_rps",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_p999_ms",
    "error_fraction",
)


def all_steps(run: RunData) -> Table:
    t = Table(
        [
            "step",
            "target",
            "load",
            "round",
            "status",
            *(f"{METRIC_LABEL[m]} ({METRICS[m].unit})" for m in ALL_STEP_METRICS),
            "stop",
        ],
        [],
    )
    for s in run.steps:
        why = not_comparable_reason(s)
        if s.valid:  # a valid but unsteady / disrupted step keeps its numbers here, labelled
            nums = [fmt(METRICS[m].value(s), METRICS[m].unit) for m in ALL_STEP_METRICS]
            cls = [""] * len(nums)
        else:
            nums = ["invalid"] * len(ALL_STEP_METRICS)
            cls = ["invalid"] * len(nums)
        status = why or "comparable"
        t.add(
            [
                s.step_id,
                s.target,
                param_label(param_of(s)),
                str(s.repeat + 1),
                status,
                *nums,
                s.stop_reason,
            ],
            ["", "", "", "", "invalid" if why else "", *cls, ""],
        )
    return t
