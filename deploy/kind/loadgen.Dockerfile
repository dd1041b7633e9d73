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

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1
# torch 2.13.0 CPU wheel (the same pin as pyproject.toml; any other index pulls a CUDA build).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY --from=build /wheels/ /wheels/
# tensorflow-serving-api with --no-deps: it declares the full `tensorflow` wheel (see pyproject).
RUN pip install /wheels/*.whl && pip install --no-deps tensorflow-serving-api==2.20.0 \
    && rm -rf /wheels
WORKDIR /opt/servecmp
COPY loadtests/locustfiles/ locustfiles/
USER 1000:1000
ENTRYPOINT []
