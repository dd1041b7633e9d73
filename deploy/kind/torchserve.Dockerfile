# TorchServe for the kind path on the SAME stack as the local path: the pins of pyproject.toml
# (Python 3.11, torch 2.13.0 CPU, torchserve 0.12.0, torch-model-archiver 0.12.0) and OpenJDK 17.
# Why not pytorch/torchserve:0.12.0-cpu: that image is Python 3.9 + torch 2.4.0 (pytorch/serve
# v0.12.0 docker/Dockerfile ARG PYTHON_VERSION=3.9, requirements/torch_linux.txt), and a
# TorchScript traced by torch 2.13 is not guaranteed to load in an older torch (TorchScript is
# backward-, not forward-compatible). tests/test_kind_images.py checks these pins against
# pyproject.toml. Build context: the repository root (scripts/kind-up.sh builds it, tags it with
# a hash of this file, and `kind load`s it onto the server node).
#
# Layout follows the upstream production image (pytorch/serve v0.12.0 docker/Dockerfile):
# user model-server (uid 1000), HOME and WORKDIR /home/model-server, model store
# /home/model-server/model-store, TEMP=/home/model-server/tmp. The chart runs it non-root with a
# read-only root filesystem and mounts emptyDirs where TorchServe writes (see the chart README).
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# slim images drop /usr/share/man: the JRE's postinst needs man1 to exist
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
# onnxruntime: an ONNX-source card is served as its .onnx in ONNX Runtime (servecmp/models/onnx_source.py)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install torchserve==0.12.0 torch-model-archiver==0.12.0 "pyyaml>=6" "numpy>=1.26" \
       onnxruntime==1.23.0
RUN useradd --create-home --uid 1000 --user-group model-server \
    && mkdir -p /home/model-server/model-store /home/model-server/logs /home/model-server/tmp \
    && chown -R 1000:1000 /home/model-server
USER 1000:1000
WORKDIR /home/model-server
ENV TEMP=/home/model-server/tmp
EXPOSE 8080 8081 8082 7070 7071
CMD ["torchserve", "--start", "--foreground", "--ncs", "--model-store", "/home/model-server/model-store"]
