"""The ONNX -> TF SavedModel conversion, run by ``port.py`` inside the port venv (.venv-port).

    python port_worker.py REQUEST.json RESULT.json

It imports only the standard library at module level plus what that venv has (onnx2tf 1.29.24,
tensorflow 2.19, onnx, onnxruntime, numpy), never ``servecmp``: the main venv's versions clash.
REQUEST: {"onnx", "out", "inputs": [{"name", "shape", "dtype"}], "outputs": [names],
"keep_layout"?: false only to show onnx2tf's default channels-last inputs (scripts/bench_port.py)}.
RESULT: {"ok": true, "tool", "notes": [...]} or {"ok": false, "step", "message", "op"?, "node"?}.
Exit status 0 whenever RESULT was written; the caller reads RESULT, not the log.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

# Inputs of the ONNX-vs-TF check: batch 2, floats N(0, 1), integers in [0, 2) (valid token ids
# and mask values for any vocabulary).
CHECK_BATCH = 2
CHECK_SEED = 20
# A wrong transpose or op shows up as errors of the outputs' own size; float32 rounding through
# a 50-layer CNN stays near 1e-4 of it.
CHECK_RTOL = 1e-3


class StepError(Exception):
    def __init__(self, step: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.step, self.message, self.extra = step, message, extra


def _nodes(graph: Any) -> Any:
    """Every node, those inside If/Loop/Scan bodies included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def check_graph(model: Any, inputs: list[dict[str, Any]], outputs: list[str]) -> None:
    graph = model.graph
    init = {i.name for i in graph.initializer}
    have_in = [i.name for i in graph.input if i.name not in init]
    want_in = [i["name"] for i in inputs]
    if have_in != want_in:
        raise StepError(
            "inputs", f"the ONNX graph's inputs are {have_in}, the spec names {want_in}"
        )
    have_out = [o.name for o in graph.output]
    if have_out != list(outputs):
        raise StepError("outputs", f"the ONNX graph's outputs are {have_out}, expected {outputs}")
    # onnx2tf converts node by node with one module per op type (onnx2tf/ops/<OpType>.py at
    # 1.29.24; onnx2tf.py imports `onnx2tf.ops.{optype}` and reports "OP is not yet implemented").
    for node in _nodes(graph):
        if importlib.util.find_spec(f"onnx2tf.ops.{node.op_type}") is None:
            domain = f" (domain {node.domain})" if node.domain else ""
            raise StepError(
                "convert",
                f"onnx2tf has no converter for ONNX op {node.op_type}{domain} at node {node.name!r}",
                op=node.op_type,
                node=node.name,
            )


def _convert(
    onnx_path: Path, work: Path, inputs: list[dict[str, Any]], keep_layout: bool, strict: bool
) -> Any:
    import onnx2tf  # type: ignore[import-not-found,unused-ignore]  # the port venv only

    # onnx2tf runs onnxsim on the file it is given and overwrites it in place (onnx2tf.py at
    # 1.29.24: `onnxsim <path> <path>`): convert a copy, never the caller's file.
    copy = work / ("strict.onnx" if strict else "model.onnx")
    shutil.copyfile(onnx_path, copy)
    names = [i["name"] for i in inputs]
    try:
        return onnx2tf.convert(
            input_onnx_file_path=str(copy),
            output_folder_path=str(work / "onnx2tf"),
            # Keep every input exactly as the ONNX graph declares it (NCHW stays NCHW); onnx2tf
            # transposes 3-5D inputs to channels-last by default (ops/Input.py at 1.29.24).
            keep_shape_absolutely_input_names=names if keep_layout else None,
            # Strict mode checks each ambiguous op against ONNX Runtime; that check itself fails on
            # scalar constants, e.g. BERT's `scores / 8.0` (ops/Div.py ->
            # correction_process_for_accuracy_errors at 1.29.24).
            disable_strict_mode=not strict,
            disable_model_save=True,
            non_verbose=True,
        )
    except SystemExit as e:  # onnx2tf calls sys.exit(1) after logging some errors
        raise StepError("convert", f"onnx2tf exited with status {e.code} (see the log)") from e
    except Exception as e:
        op_name = getattr(e, "onnx_op_name", None)
        where = f" at node {op_name!r}" if op_name else ""
        raise StepError(
            "convert", f"onnx2tf failed{where}: {type(e).__name__}: {e}", node=op_name or ""
        ) from e


def save(
    model: Any, onnx_model: Any, out: Path, inputs: list[dict[str, Any]], outputs: list[str]
) -> list[str]:
    """Write a SavedModel whose serving signature names inputs and outputs as the ONNX graph does."""
    import tensorflow as tf

    notes: list[str] = []
    layouts = getattr(model, "onnx_output_layouts", {}) or {}
    # The Keras inputs carry the ONNX input names (ops/Input.py at 1.29.24 names each
    # tf_keras.Input after the graph input; get_tf_model_inputs lists them in graph order).
    # Pair them by name, so two same-shaped inputs (token ids and a mask) can never swap; the
    # order is the fallback only where onnx2tf renamed one.
    keras_names = [str(t.name).split(":")[0] for t in model.inputs]
    wanted = [i["name"] for i in inputs]
    if sorted(keras_names) != sorted(wanted):
        if len(keras_names) != len(wanted):
            raise StepError(
                "inputs", f"onnx2tf's model takes inputs {keras_names}, the spec names {wanted}"
            )
        notes.append(f"onnx2tf renamed the inputs to {keras_names}: paired in graph order")
        keras_names = wanted
    by_name = dict(zip(keras_names, model.inputs, strict=True))
    specs = [tf.TensorSpec(by_name[n].shape, by_name[n].dtype, name=n) for n in wanted]
    position = [wanted.index(n) for n in keras_names]  # model.inputs order, in spec positions
    onnx_out_rank = {o.name: len(o.type.tensor_type.shape.dim) for o in onnx_model.graph.output}

    class Served(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=specs)
        def serve(self, *args: Any) -> dict[str, Any]:
            ys = self.model([args[k] for k in position])
            ys = ys if isinstance(ys, list | tuple) else [ys]
            result = {}
            for name, y in zip(outputs, ys, strict=True):
                rank = onnx_out_rank.get(name, 0)
                if layouts.get(name) and rank >= 3:
                    # back to the ONNX graph's channels-first layout
                    y = tf.transpose(y, [0, rank - 1, *range(1, rank - 1)])
                result[name] = y
            return result

    for name in outputs:
        if layouts.get(name) and onnx_out_rank.get(name, 0) >= 3:
            notes.append(f"output {name}: transposed back from channels-last to the ONNX layout")
    served = Served()
    fn = served.serve.get_concrete_function()
    tf.saved_model.save(served, str(out), signatures={"serving_default": fn})
    return notes


def check_against_onnxruntime(
    onnx_path: Path, out: Path, inputs: list[dict[str, Any]], outputs: list[str]
) -> str:
    """max |ONNX Runtime - SavedModel| on seeded inputs (reloaded from disk, as a server would)."""
    import numpy as np
    import onnxruntime as ort  # type: ignore[import-not-found,unused-ignore]
    import tensorflow as tf

    rng = np.random.default_rng(CHECK_SEED)
    feed = {}
    for i in inputs:
        shape = [CHECK_BATCH if d is None else d for d in i["shape"]]
        if i["dtype"].startswith("int"):
            feed[i["name"]] = rng.integers(0, 2, size=shape).astype(i["dtype"])
        else:
            feed[i["name"]] = rng.standard_normal(shape).astype(i["dtype"])
    fn = tf.saved_model.load(str(out)).signatures["serving_default"]
    sig = fn.structured_input_signature[1]
    moved = [i["name"] for i in inputs if sig[i["name"]].shape.as_list() != list(i["shape"])]
    if moved:
        # port.py's signature check refuses this with both shapes; feeding it would only fail
        return f"ONNX Runtime check skipped: the signature reshaped inputs {moved}"
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(
        outputs, feed
    )
    try:
        got = fn(**{k: tf.constant(v) for k, v in feed.items()})
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise StepError(
            "check", f"the SavedModel fails on seeded inputs of batch {CHECK_BATCH}: {_tf_error(e)}"
        ) from e
    diffs = []
    for name, r in zip(outputs, ref, strict=True):
        g = got[name].numpy()
        if g.shape != r.shape:
            raise StepError(
                "check", f"output {name}: SavedModel shape {g.shape}, ONNX Runtime {r.shape}"
            )
        diff = float(np.max(np.abs(g.astype(np.float64) - r)))
        diffs.append(f"{name} {diff:.3g}")
        bound = CHECK_RTOL * max(1.0, float(np.max(np.abs(r))))
        if not diff <= bound:  # NaN fails too
            raise StepError(
                "parity",
                f"output {name}: max |ONNX Runtime - SavedModel| = {diff:.3g} on seeded inputs, "
                f"above {bound:.3g} ({CHECK_RTOL} x max(1, max |ONNX Runtime output|))",
            )
    return (
        f"ONNX Runtime vs SavedModel on seeded inputs (batch {CHECK_BATCH}): max |diff| "
        + ", ".join(diffs)
    )


def convert_and_check(
    onnx_path: Path, onnx_model: Any, work: Path, out: Path, request: dict[str, Any]
) -> list[str]:
    """onnx2tf in strict mode, saved and checked against ONNX Runtime at batch CHECK_BATCH;
    where any of that fails, once more without strict mode (a note says so).

    Strict mode is not always the safer one: at 1.29.24 its Flatten check (ops/Flatten.py)
    tries every permutation and axis against ONNX Runtime's output on validation data of
    batch 1 (utils/common_functions.py dummy_onnx_inference fixes dynamic axes to 1), where
    flattening from axis 0 equals flattening from axis 1, so it takes axis 0 and
    bakes the batch as 1 (`reshape(1, -1)`): nn.Flatten -> Linear then fails at batch 2 with
    "Matrix size-incompatible". Without strict mode that check is skipped and the axis comes
    from the graph. Only the ONNX Runtime check at batch 2 tells the two apart."""
    inputs, outputs = request["inputs"], request["outputs"]
    keep_layout = request.get("keep_layout", True)
    notes: list[str] = []
    for strict in (True, False):
        try:
            model = _convert(onnx_path, work, inputs, keep_layout, strict=strict)
            shutil.rmtree(out, ignore_errors=True)
            try:
                saved = save(model, onnx_model, out, inputs, outputs)
            except Exception as e:
                raise StepError(
                    "save", f"writing the SavedModel failed: {type(e).__name__}: {e}"
                ) from e
            check = check_against_onnxruntime(onnx_path, out, inputs, outputs)
        except StepError as e:
            if not strict or e.extra.get("op"):
                raise
            first = e.message.splitlines()[0]
            notes.append(
                f"strict mode failed ({e.step}: {first}); converted with disable_strict_mode"
            )
            continue
        return [*notes, *saved, check]
    raise AssertionError("unreachable: the non-strict pass returns or raises")


def _tf_error(e: Exception) -> str:
    """A TensorFlow runtime error's message without its stack and node lines."""
    skip = ("Detected at node", "<stack traces", "[[", "Graph execution error")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    kept = [ln for ln in lines if not ln.startswith(skip)]
    return " ".join(kept or lines)[:500]


def run(request: dict[str, Any]) -> dict[str, Any]:
    import onnx  # type: ignore[import-not-found,unused-ignore]
    import onnx2tf  # type: ignore[import-not-found,unused-ignore]  # the port venv only
    import tensorflow as tf

    onnx_path, out = Path(request["onnx"]), Path(request["out"])
    inputs, outputs = request["inputs"], request["outputs"]
    try:
        # protobuf parses many byte strings into a (mostly empty) ModelProto: the checker is
        # what tells a model from arbitrary bytes (given the path, it handles > 2 GB models).
        onnx.checker.check_model(str(onnx_path))
        onnx_model = onnx.load(str(onnx_path))
    except Exception as e:
        raise StepError("load", f"{onnx_path} is not an ONNX model: {type(e).__name__}: {e}") from e
    check_graph(onnx_model, inputs, outputs)
    work = out.parent / (out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    try:
        notes = convert_and_check(onnx_path, onnx_model, work, out, request)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes.insert(0, f"written by tensorflow {tf.__version__} (onnx {onnx.__version__})")
    return {"ok": True, "tool": f"onnx2tf {onnx2tf.__version__}", "notes": notes}


def main(argv: list[str]) -> int:
    request = json.loads(Path(argv[1]).read_text())
    try:
        result = run(request)
    except StepError as e:
        result = {"ok": False, "step": e.step, "message": e.message, **e.extra}
    except Exception as e:
        traceback.print_exc()
        result = {"ok": False, "step": "worker", "message": f"{type(e).__name__}: {e}"}
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
