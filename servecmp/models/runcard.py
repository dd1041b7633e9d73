"""The run's model card (``<run_dir>/model_card.json``): what was served and what it costs to
send, read by the report's model card section (servecmp/report/tables/model_card.py).

Parameters are counted, FLOPs measured on one example with ``torch.utils.flop_counter``
(multiply-adds count 2), input bytes are the encoded request bodies of the run's payloads, and
the artifact sizes, export times and parity rows come from the export record (export.json).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from servecmp.models.card import ModelCard

RUN_CARD_FILE = "model_card.json"


def count_parameters(model: Any) -> int | None:
    if isinstance(getattr(model, "parameter_count", None), int):  # an ONNX source: initializers
        return int(model.parameter_count)
    params = getattr(model, "parameters", None)
    if params is None:
        return None
    return int(sum(p.numel() for p in params()))


def measure_flops(card: ModelCard, model: Any) -> int | None:
    """FLOPs of one example (batch 1); None where the counter cannot run the model (an ONNX
    source: the counter sees torch ops only)."""
    if card.source.onnx:
        return None
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from servecmp.models.sources import example_inputs

    x = [torch.from_numpy(a) for a in example_inputs(card, 1, 0)]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(*x)
    except Exception:
        return None
    return int(counter.get_total_flops())


def reference_runtime(card: ModelCard) -> str:
    from importlib import metadata

    if card.source.onnx:
        from servecmp.models.onnx_source import ort_version

        return f"ONNX Runtime {ort_version()}"
    try:
        return f"PyTorch {metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        return "PyTorch"


def body_bytes(payloads: Any, encodings: Iterable[Any]) -> dict[str, int]:
    """Size of one request body per encoding (the first payload; every payload has the same)."""
    out: dict[str, int] = {}
    for enc in encodings:
        body = payloads.body(enc, 0)
        if isinstance(body, bytes | bytearray):
            n = len(body)
        elif isinstance(body, tuple):  # in-process, several inputs: the arrays themselves
            n = int(sum(getattr(a, "nbytes", 0) for a in body))
        elif isinstance(body, dict):  # TF Serving gRPC, several inputs: one message each
            n = int(sum(m.ByteSize() for m in body.values()))
        elif hasattr(body, "ByteSize"):
            n = int(body.ByteSize())  # a protobuf message: its serialized size
        else:
            n = int(getattr(body, "nbytes", 0))  # in-process: the array itself
        out[str(getattr(enc, "value", enc))] = n
    return out


def run_card(
    card: ModelCard,
    model: Any,
    record: dict[str, Any],
    input_bytes: dict[str, int],
    servers_run: Collection[str] | None = None,
) -> dict[str, Any]:
    """``servers_run``: the servers and baselines the run measures (None: every one exported);
    the export packages for every adapter, the card lists only these."""

    def wanted(server: str) -> bool:
        return servers_run is None or server in servers_run

    servers = {
        k: v
        for k, v in record.items()
        if isinstance(v, dict) and {"artifact", "bytes"} <= set(v) and wanted(k)
    }
    return {
        "name": card.name,
        "description": card.description,
        "source": {"kind": card.source.kind, "ref": card.module},
        # what computes the reference (and, for the PyTorch-framework servers, what serves)
        "runtime": reference_runtime(card),
        "card_path": str(card.card_path) if card.card_path else None,
        "inputs": [i.model_dump(mode="json") for i in card.inputs],
        "outputs": [o.model_dump(mode="json") for o in card.outputs],
        "parameters": count_parameters(model),
        "flops_per_example": measure_flops(card, model),
        "input_bytes_per_request": input_bytes,
        "artifact_bytes": {s: int(v["bytes"]) for s, v in servers.items()},
        "export_s": {s: float(v["seconds"]) for s, v in servers.items()},
        "build_s": record.get("build_s"),
        "sources": {k: float(v["seconds"]) for k, v in (record.get("sources") or {}).items()},
        "parity": record.get("parity") or [],
        "unavailable": {k: v for k, v in (record.get("unavailable") or {}).items() if wanted(k)},
        "notes": record.get("notes") or [],
        "seed": record.get("seed"),
        # why there is no SavedModel by choice, e.g. "not ported (no TF target)"
        "not_ported": record.get("not_ported") or "",
    }


def write_run_card(run_dir: Path, data: dict[str, Any]) -> Path:
    path = Path(run_dir) / RUN_CARD_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_run_card(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RUN_CARD_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else None
