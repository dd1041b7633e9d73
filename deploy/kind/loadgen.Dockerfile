# In-cluster load generator: the INSTALLED servecmp wheel (servecmp steps, the step engine, the
# Locust users and locustfiles). Build context: the repository root (scripts/kind-load.sh builds
# it, tags it with a hash of what it copies and `kind load`s it onto the loadgen node).
#
# Why a wheel: the runtime stage runs exactly what `pip install` gives a user (package data such
# as servecmp/models/golden included), and a source tree in the working directory would shadow
# the installed package (python -m and Locust put the cwd first on sys.path). So the runtime
# stage carries no source package:
# its working directory holds only the locustfiles (scripts that import the installed package),
# and PYTHONSAFEPATH keeps `python -m` from putting the cwd on sys.path at all.
# tests/test_kind_image_layout.py lays out this working directory (from the COPY/WORKDIR/ENV lines
# below) around a non-editable install of the wheel and runs every in-cluster entry point there.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY servecmp/ servecmp/
RUN pip wheel --no-deps --wheel-dir /wheels .

# The KServe gRPC client's schema (servecmp/load/clients/oip_protos.py compiles it at first use):
# the kserve 0.21.0 wheel carries the Open Inference Protocol only as the serialized descriptor in
# kserve/protocol/grpc/grpc_predict_v2_pb2.py (its RECORD lists no .proto). kserve itself needs
# protobuf<7 (ours is 7) and is never imported, so only that one file is taken from its wheel.
FROM python:3.11-slim-bookworm AS oip
ENV PIP_NO_CACHE_DIR=1
RUN pip download --no-deps --only-binary=:all: --dest /dl kserve==0.21.0 \
    && python -m zipfile -e /dl/kserve-0.21.0-py3-none-any.whl /x \
    && mkdir /oip && cp /x/kserve/protocol/grpc/grpc_predict_v2_pb2.py /oip/

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
# torch 2.13.0 CPU wheel (the same pin as pyproject.toml; any other index pulls a CUDA build).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY --from=build /wheels/ /wheels/
# tensorflow-serving-api with --no-deps: it declares the full `tensorflow` wheel (see pyproject).
RUN pip install /wheels/*.whl && pip install --no-deps tensorflow-serving-api==2.20.0 \
    && rm -rf /wheels
COPY --from=oip /oip/grpc_predict_v2_pb2.py /opt/oip/grpc_predict_v2_pb2.py
ENV SERVECMP_OIP_PB2=/opt/oip/grpc_predict_v2_pb2.py
WORKDIR /opt/servecmp
COPY loadtests/locustfiles/ locustfiles/
USER 1000:1000
ENTRYPOINT []
