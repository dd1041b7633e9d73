# In-cluster load generator: the repository's own Locust users and locustfiles.
# Build context: the repository root (scripts/kind-load.sh builds and `kind load`s it).
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/servecmp
# torch 2.13.0 CPU wheel (the same pin as pyproject.toml), then the package and its deps.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY servecmp/ servecmp/
COPY models/ models/
COPY deploy/ deploy/
COPY loadtests/ loadtests/
COPY experiments/ experiments/
RUN pip install . && pip install --no-deps tensorflow-serving-api==2.20.0
USER 1000:1000
ENTRYPOINT []
