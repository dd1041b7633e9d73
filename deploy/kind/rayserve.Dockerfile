# Ray Serve for the kind path, on the project's pins: Python 3.11 (pyproject requires-python),
# ray[serve] 2.60.0 (servecmp/versions.py RAY_VERSION) and torch 2.13.0 from the CPU wheel index
# (any other torch pulls a multi-GB CUDA build); grpcio-tools compiles the OIP stubs below.
# tests/test_rayserve.py checks the pins and the script.
#
# One pod runs what the local path runs: servecmp/servers/rayserve/serve_app.py (a standalone
# script: ray, torch, numpy, starlette and the OIP stubs, never servecmp) starts a one-node Ray
# (`ray.init`, no dashboard) and deploys the generated serve_config.yaml as `serve run` does; the
# chart passes exactly the generated flags.txt lines (--config, --num_cpus,
# --metrics_export_port). Build context: the repository root.

# The Open Inference Protocol schema exists only as the serialized descriptor inside the kserve
# 0.21.0 wheel (kserve/protocol/grpc/grpc_predict_v2_pb2.py; see loadgen.Dockerfile): that one
# file is taken, never kserve itself.
FROM python:3.11-slim-bookworm AS oip
ENV PIP_NO_CACHE_DIR=1
RUN pip download --no-deps --only-binary=:all: --dest /dl kserve==0.21.0 \
    && python -m zipfile -e /dl/kserve-0.21.0-py3-none-any.whl /x \
    && mkdir /oip && cp /x/kserve/protocol/grpc/grpc_predict_v2_pb2.py /oip/

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# onnxruntime: an ONNX-source card is served as its .onnx in ONNX Runtime (servecmp/models/onnx_source.py)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install "ray[serve]==2.60.0" "numpy>=1.26" grpcio-tools onnxruntime==1.23.0
RUN useradd --create-home --uid 1000 --user-group ray \
    && mkdir -p /opt/servecmp /opt/gen/servecmp/load/clients
COPY --from=oip /oip/grpc_predict_v2_pb2.py /opt/oip/grpc_predict_v2_pb2.py
# Compiled with the same code the local path uses (servecmp/load/clients/protos.py, "oip" set),
# into /opt/servecmp/servecmp_oip_grpc_stubs (the servicer function the Serve config names).
COPY servecmp/load/clients/protos.py /opt/gen/servecmp/load/clients/protos.py
RUN cd /opt/gen/servecmp/load/clients && SERVECMP_OIP_PB2=/opt/oip/grpc_predict_v2_pb2.py python -c \
      "import protos; from pathlib import Path; print(protos.stub_dir('oip', Path('/opt/gen/stubs')))" \
    && mv /opt/gen/stubs/oip-*/servecmp_oip_grpc_stubs /opt/servecmp/ \
    && rm -rf /opt/gen
COPY servecmp/servers/rayserve/serve_app.py /opt/servecmp/serve_app.py
USER 1000:1000
WORKDIR /opt/servecmp
# Every Ray process (the proxy and replicas are workers the raylet starts with this environment)
# imports serve_app and the stubs from here. The chart mounts an emptyDir at /tmp under a
# read-only root filesystem: Ray's temp dir (/tmp/ray) and HOME (Ray's ~/.ray auth token) live there.
ENV HOME=/tmp PYTHONPATH=/opt/servecmp
ENTRYPOINT ["python", "/opt/servecmp/serve_app.py"]
