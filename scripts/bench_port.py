"""Figures for the ONNX -> TensorFlow port, per model and tool (a benchmark that prints, not a test).

    PYTHONPATH=$PWD .venv/bin/python scripts/bench_port.py [--models resnet,mobilenet_v3_small,...]

Per model: build time, parameters, FLOPs, ONNX export time and size, port time, the SavedModel's
serving signature (layout kept?), that the main venv's TF (the TF Serving pin) loads it, parity
against PyTorch on seeded inputs (max |diff|, argmax agreement) and the per-request time at
batch 1 on one thread in PyTorch and in the ported SavedModel. Also shows onnx2tf's default
(channels-last inputs) being refused by the signature check, and whether nobuco imports here
(nobuco 0.17 needs Keras 2, i.e. TF <= 2.15, and imports torchvision, which fails beside torch
2.13.0: it cannot run with this project's pins).

Needs ``onnx`` in this venv for ``torch.onnx.export`` and the port venv (scripts/setup-port.sh).
Timings on a shared 2-core machine vary a lot: repeat and read them as ranges.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import torch

from servecmp.models import zoo
from servecmp.models.port import PortError, port_onnx_to_savedmodel

MODELS = ("resnet", "mobilenet_v3_small", "resnet50", "bert_base")
PARITY_BATCH = 4
PARITY_SEED = 99
TIMING_RUNS = 20
TIMING_BUDGET_S = 30.0
OPSET = 17


def builtin_resnet() -> zoo.ZooModel:
    from servecmp.models import resnet

    return zoo.ZooModel(
        "resnet",
        "built-in ResNet (basic blocks), 3x64x64 -> 10 logits",
        resnet.build_torch,
        (zoo.ZooTensor("input", (None, *resnet.INPUT_SHAPE), "float32", -2.0, 2.0),),
        ("logits",),
        0,
        0.0,
    )


def spec_of(name: str) -> zoo.ZooModel:
    return builtin_resnet() if name == "resnet" else zoo.ZOO[name]


def export_onnx(model: torch.nn.Module, spec: zoo.ZooModel, path: Path) -> None:
    example = zoo.example_inputs(spec, 1, 0)
    names = [t.name for t in spec.inputs]
    axes = {n: {0: "batch"} for n in [*names, *spec.outputs]}
    torch.onnx.export(
        model,
        example,
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=names,
        output_names=list(spec.outputs),
        dynamic_axes=axes,
    )


def p50_ms(fn: Callable[[], Any]) -> float:
    fn()  # warm-up
    times: list[float] = []
    deadline = time.monotonic() + TIMING_BUDGET_S
    while len(times) < TIMING_RUNS and time.monotonic() < deadline:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_model(name: str, work: Path, tf: Any) -> None:
    spec = spec_of(name)
    t = time.perf_counter()
    model = spec.factory(zoo.DEFAULT_SEED)
    build_s = time.perf_counter() - t
    one = zoo.example_inputs(spec, 1, 0)
    print(f"\n== {name}: {spec.description}")
    print(
        f"  parameters {zoo.parameter_count(model):,}; FLOPs/example {zoo.flops(model, one) / 1e9:.3f} G "
        f"(2 per multiply-add); build {build_s:.1f} s"
    )
    onnx2tf_port(tf, spec, model, work, one)


def onnx2tf_port(
    tf: Any, spec: zoo.ZooModel, model: torch.nn.Module, work: Path, one: tuple[torch.Tensor, ...]
) -> None:
    onnx_path = work / f"{spec.name}.onnx"
    t = time.perf_counter()
    export_onnx(model, spec, onnx_path)
    print(
        f"  ONNX export (torch legacy exporter, opset {OPSET}) {time.perf_counter() - t:.1f} s, "
        f"{onnx_path.stat().st_size / 2**20:.1f} MiB"
    )
    out = work / f"{spec.name} saved_model"
    try:
        r = port_onnx_to_savedmodel(onnx_path, out, spec.inputs, spec.outputs)
    except PortError as e:
        print(f"  onnx2tf: FAILED: {e}")
        return
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"  {r.tool}: port {r.seconds:.1f} s, SavedModel {size / 2**20:.1f} MiB")
    for n in r.notes:
        print(f"    {n}")
    check_saved_model(tf, spec, model, out, one)


def check_saved_model(
    tf: Any, spec: zoo.ZooModel, model: torch.nn.Module, out: Path, one: tuple[torch.Tensor, ...]
) -> None:
    loaded = tf.saved_model.load(str(out))
    fn = loaded.signatures["serving_default"]
    print(
        "  TF "
        + tf.__version__
        + " loads it; signature inputs: "
        + ", ".join(
            f"{k} {tuple(v.shape)} {v.dtype.name}"
            for k, v in fn.structured_input_signature[1].items()
        )
    )
    xs = zoo.example_inputs(spec, PARITY_BATCH, PARITY_SEED)
    with torch.no_grad():
        ref = model(*xs).numpy()
    got = fn(**{t.name: tf.constant(x.numpy()) for t, x in zip(spec.inputs, xs, strict=True)})
    y = got[spec.outputs[0]].numpy()
    diff = float(np.max(np.abs(y.astype(np.float64) - ref)))
    agree = int(np.sum(y.argmax(1) == ref.argmax(1)))
    print(
        f"  parity vs PyTorch (batch {PARITY_BATCH}, seed {PARITY_SEED}): max |diff| {diff:.3g} "
        f"(logit spread {float(ref.std()):.3g}); argmax agree {agree}/{PARITY_BATCH}"
    )
    torch.set_num_threads(1)
    with torch.no_grad():
        torch_ms = p50_ms(lambda: model(*one))
    feed = {t.name: tf.constant(x.numpy()) for t, x in zip(spec.inputs, one, strict=True)}
    tf_ms = p50_ms(lambda: fn(**feed))
    print(
        f"  batch 1, one thread, p50 of <= {TIMING_RUNS}: PyTorch {torch_ms:.1f} ms, "
        f"SavedModel (TF {tf.__version__}) {tf_ms:.1f} ms"
    )


def default_layout_is_refused(work: Path) -> None:
    spec = builtin_resnet()
    onnx_path = work / "layout.onnx"
    export_onnx(spec.factory(zoo.DEFAULT_SEED), spec, onnx_path)
    try:
        port_onnx_to_savedmodel(
            onnx_path, work / "layout", spec.inputs, spec.outputs, keep_layout=False
        )
        print("\n== onnx2tf default layout: the signature kept NCHW")
    except PortError as e:
        print(f"\n== onnx2tf default layout (no keep_shape_absolutely_input_names): refused: {e}")


def nobuco_here() -> None:
    try:
        import nobuco  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        print("\n== nobuco imports in this venv")
    except Exception as e:
        print(f"\n== nobuco does not import beside TF {_tf_version()}: {type(e).__name__}: {e}")


def _tf_version() -> str:
    import tensorflow as tf

    return str(tf.__version__)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {MODELS}")
    ap.add_argument("--skip-layout", action="store_true", help="skip the default-layout demo")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in MODELS]
    if bad:
        ap.error(f"--models: unknown {bad}; expected names from {MODELS}")
    if importlib.util.find_spec("onnx") is None:
        print("torch.onnx.export needs the `onnx` package in this venv", file=sys.stderr)
        return 2
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    print(
        f"torch {torch.__version__}, tensorflow {tf.__version__}, python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="bench port ") as d:
        for name in names:
            bench_model(name, Path(d), tf)
        if not args.skip_layout:
            default_layout_is_refused(Path(d))
    nobuco_here()
    return 0


if __name__ == "__main__":
    sys.exit(main())
