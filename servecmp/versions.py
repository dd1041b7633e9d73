"""TF Serving and the TensorFlow that exports for it: the one place these versions are pinned.

A SavedModel must be written by a TensorFlow no newer than the TF Serving that loads it (ops and
graph features added later are unknown to an older server). So the server and the exporter are
pinned to the same release. 2.20.0 is the newest TF Serving release (tensorflow/serving tags:
2.19.0, 2.19.1, 2.20.0; there is no 2.21) and tensorflow-cpu 2.20.0 installs beside torch 2.13.0,
protobuf 7.36 and numpy 2.4 (checked in a fresh venv: export, load and call a SavedModel).

Everything else reads or is checked against this module: ``pinned_image()`` (local Docker), the
chart's ``image.tag``, ``pyproject.toml``, ``scripts/setup.sh``, the workflows and the loadgen
Dockerfile (tests/test_versions.py fails when one of them diverges).
"""

from __future__ import annotations

import re

TF_SERVING_VERSION = "2.20.0"
# The official image (tensorflow_serving/tools/docker/Dockerfile at 2.20.0: binary at
# /usr/bin/tensorflow_model_server, entrypoint /usr/bin/tf_serving_entrypoint.sh).
TF_SERVING_IMAGE_REPOSITORY = "tensorflow/serving"
# The exporter (tensorflow-cpu) and the gRPC API package, both equal to the server's release.
TENSORFLOW_EXPORTER_VERSION = TF_SERVING_VERSION
TF_SERVING_API_VERSION = TF_SERVING_VERSION


def tf_serving_image() -> str:
    return f"{TF_SERVING_IMAGE_REPOSITORY}:{TF_SERVING_VERSION}"


def release_of(version_text: str) -> str | None:
    """The x.y.z release in ``tensorflow_model_server --version`` output, e.g.
    ``TensorFlow ModelServer: 2.20.0-rc0+dev.sha.abc`` → ``2.20.0`` (main.cc prints
    ``"TensorFlow ModelServer: " << TF_Serving_Version()`` then ``"TensorFlow Library: "``)."""
    m = re.search(r"TensorFlow ModelServer:\s*(\d+\.\d+\.\d+)", version_text)
    return m.group(1) if m else None


# KServe's Python model server (PyPI ``kserve``), run from its own venv ``.venv-kserve`` (it
# requires protobuf<7; our stack resolves to 7.x). scripts/setup.sh installs exactly this pin
# and the cluster image (deploy/kind/kserve.Dockerfile) too (tests/test_versions.py checks).
KSERVE_VERSION = "0.21.0"

# Triton Inference Server 2.51.0 with its Python backend, as bundled in the ``nvidia-pytriton``
# 0.7.0 wheel (``pytriton/tritonserver/bin/tritonserver``; PyPI's ``tritonserver`` is a
# placeholder). Its models run in their own venv ``.venv-triton``: the backend stub fails every
# response under numpy 2 ("output tensor shape does not match size of output"), so numpy is
# pinned below 2 there; torch is the CPU wheel (any other pin pulls CUDA builds).
# scripts/setup-triton.sh installs exactly these pins (tests/test_versions.py checks).
TRITON_VERSION = "2.51.0"
PYTRITON_VERSION = "0.7.0"
TRITON_TORCH_VERSION = "2.13.0"
TRITON_NUMPY_VERSION = "1.26.4"
# Ray Serve (PyPI ``ray[serve]``), run from its own venv ``.venv-ray`` (scripts/setup-ray.sh
# installs exactly this pin, and so does the cluster image deploy/kind/rayserve.Dockerfile;
# tests/test_versions.py checks both).
RAY_VERSION = "2.60.0"
# The ONNX -> TensorFlow port (servecmp/models/port.py) runs onnx2tf in its own venv
# ``.venv-port`` (scripts/setup-port.sh installs exactly this pin): 1.29.24 is the newest release
# on Python 3.11 (2.x needs >= 3.12) and pins tensorflow 2.19.0, numpy 1.26.4 and protobuf 4.25.5
# (its wheel's Requires-Dist). The SavedModel it writes comes from that TensorFlow, which must not
# be newer than TF Serving (tests/test_versions.py checks both).
ONNX2TF_VERSION = "1.29.24"
PORT_TENSORFLOW_VERSION = "2.19.0"
# ONNX Runtime runs an ONNX-source card: its reference and the `pytorch` baseline (.venv), and the
# model code of TorchServe's handler, KServe, Triton and Ray Serve (each server's venv). The same
# release everywhere, the one .venv-port has (onnx2tf's checks): scripts/setup.sh,
# setup-triton.sh, setup-ray.sh and pyproject.toml install exactly this pin
# (tests/test_versions.py checks).
ONNXRUNTIME_VERSION = "1.23.0"
