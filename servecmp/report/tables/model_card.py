"""The model card section: what was served (parameters, FLOPs, input bytes per request), each
server's artifact (size, packaging time), the parity table proven before measuring, and the
serving tax per server at concurrency 1 (server p50 minus its in-process baseline's p50)."""

from __future__ import annotations

from typing import Any

from servecmp.models.runcard import read_run_card
from servecmp.models.tolerance import RULE
from servecmp.report.cells import cells, targets
from servecmp.report.data import RunData
from servecmp.report.format import fmt
from servecmp.report.servers import baseline_of
from servecmp.report.table import Table

C1 = ("concurrency", 1.0)


def _n(x: Any) -> str:
    if x is None:
        return "—"
    x = float(x)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:g}"


def card_summary(card: dict[str, Any]) -> Table:
    t = Table(["item", "value"], [])
    ins = "; ".join(
        f"{i['name']} [{', '.join('B' if d is None else str(d) for d in i['shape'])}] {i['dtype']}"
        + (f" in {i['range']}" if i.get("range") else "")
        for i in card.get("inputs", [])
    )
    outs = "; ".join(
        f"{o['name']}" + (f" (classification, top-{o['top_k']})" if o.get("classification") else "")
        for o in card.get("outputs", [])
    )
    flops = card.get("flops_per_example")
    pairs: list[tuple[str, str]] = [
        ("model", str(card.get("name"))),
        ("description", card.get("description") or "—"),
        (
            "source",
            f"{card['source']['kind']}: {card['source']['ref']}" if card.get("source") else "—",
        ),
        ("inputs", ins or "—"),
        ("outputs", outs or "—"),
        ("parameters", _n(card.get("parameters"))),
        (
            "FLOPs per example (measured, torch flop counter)",
            _n(flops) if flops else "not measured",
        ),
        (
            "input bytes per request",
            ", ".join(
                f"{k}: {v:,} B" for k, v in (card.get("input_bytes_per_request") or {}).items()
            )
            or "—",
        ),
        ("reference runtime", card.get("runtime") or "PyTorch"),
        (
            f"building the {card.get('runtime') or 'PyTorch'} reference",
            fmt(card.get("build_s"), "s") + " s",
        ),
    ]
    if card.get("not_ported"):
        pairs.append(("SavedModel (TF Serving, TF baseline)", card["not_ported"]))
    pairs += [(f"no artifact for {s}", why) for s, why in (card.get("unavailable") or {}).items()]
    pairs += [("note", n) for n in card.get("notes") or []]
    for k, v in pairs:
        t.add([k, v])
    return t


def artifact_table(card: dict[str, Any]) -> Table:
    t = Table(["server", "artifact size", "export + packaging (s)"], [])
    sizes, secs = card.get("artifact_bytes") or {}, card.get("export_s") or {}
    for server in sizes:
        t.add([server, f"{sizes[server]:,} B", fmt(secs.get(server), "s")])
    return t


def parity_table(card: dict[str, Any]) -> Table:
    t = Table(
        [
            "artifact",
            "runtime",
            "inputs",
            "max |Δ|",
            "tolerance",
            "argmax agree",
            "top-k agree",
            "verdict",
        ],
        [],
        caption=f"Tolerance rule: {RULE}.",
    )
    for r in card.get("parity") or []:
        agree = r.get("argmax_agree")
        topk = r.get("topk_agree")
        t.add(
            [
                r["artifact"],
                r["runtime"],
                str(r["n"]),
                f"{r['max_abs_diff']:.2e}",
                f"{r['atol']:.1e}",
                "—" if agree is None else f"{agree:.0%}",
                "—" if topk is None else f"{topk:.0%}",
                ("pass" if r["passed"] else "FAIL") + (f" ({r['note']})" if r.get("note") else ""),
            ],
            ["", "", "", "", "", "", "", "" if r["passed"] else "bad"],
        )
    if card.get("not_ported"):  # a row that says so, rather than a missing one
        t.add(["savedmodel", "tensorflow", "—", "—", "—", "—", "—", card["not_ported"]])
    return t


def serving_tax(run: RunData) -> Table:
    """Per server target at c=1: its p50 minus its framework's in-process p50 (the same model's
    compute without a server), and that tax as a share of the in-process p50."""
    t = Table(
        [
            "target",
            "baseline",
            "server p50 (ms)",
            "in-process p50 (ms)",
            "serving tax (ms)",
            "tax / compute",
        ],
        [],
    )
    cs = cells(run)
    for ti in targets(run):
        base = baseline_of(ti.server)
        if ti.baseline or base is None:
            continue
        c, cb = cs.get((ti.name, C1)), cs.get((base, C1))
        a = c.value("latency_p50_ms") if c is not None and c.rep is not None else None
        b = cb.value("latency_p50_ms") if cb is not None and cb.rep is not None else None
        if a is None or b is None:
            why = ti.unavailable or (
                "not measured at c=1" if c is None or cb is None else "not comparable"
            )
            t.add(
                [ti.name, base, fmt(a, "ms"), fmt(b, "ms"), why, "—"], ["", "", "", "", "na", "na"]
            )
            continue
        share = f"{(a - b) / b:.0%}" if b > 0 else "—"
        t.add([ti.name, base, fmt(a, "ms"), fmt(b, "ms"), fmt(a - b, "ms"), share])
    return t


def model_card_tables(run: RunData) -> dict[str, Table]:
    """The section's tables, or {} for a run without a model card (older runs)."""
    card = read_run_card(run.dir)
    if card is None:
        return {}
    return {
        "model_card": card_summary(card),
        "model_artifacts": artifact_table(card),
        "model_parity": parity_table(card),
        "model_tax": serving_tax(run),
    }
