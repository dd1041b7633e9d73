# KServe's Python model server for the kind path, on the project's pins: Python 3.11 (pyproject
# requires-python), kserve 0.21.0 (servecmp/versions.py KSERVE_VERSION) and torch 2.13.0 from the
# CPU wheel index (pyproject; any other torch pulls a multi-GB CUDA build). kserve 0.21.0's wheel
# METADATA: Requires-Python >=3.10,<3.14 and protobuf<7.0.0,>=6.33.5 (ours resolves to 7.x), which
# is why it has its own image (locally: its own venv) instead of sharing ours. It serves HTTP on
# 8080 and gRPC on 8081 by default (kserve/constants/constants.py); the chart passes the ports the
# adapter's wire names anyway.
# tests/test_kind_kserve_image.py checks these pins, the user and the entrypoint.
#
# The entrypoint is servecmp/servers/kserve/model_server.py, a standalone script (imports kserve, torch and
# numpy only, never servecmp); the chart passes exactly the generated flags.txt lines as its
# arguments (--model_name, --model_dir, --http_port, --grpc_port, --workers, threads). Build
# context: the repository root (`servecmp kind up` builds it, tags it with a hash of what it
# copies, and `kind load`s it onto the server node).
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# onnxruntime: an ONNX-source card is served as its .onnx in ONNX Runtime (servecmp/models/onnx_source.py)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install kserve==0.21.0 "numpy>=1.26" onnxruntime==1.23.0
RUN useradd --create-home --uid 1000 --user-group kserve \
    && mkdir -p /opt/servecmp
COPY servecmp/servers/kserve/model_server.py /opt/servecmp/model_server.py
USER 1000:1000
WORKDIR /opt/servecmp
# The chart mounts an emptyDir at /tmp under a read-only root filesystem.
ENV HOME=/tmp
ENTRYPOINT ["python", "/opt/servecmp/model_server.py"]
