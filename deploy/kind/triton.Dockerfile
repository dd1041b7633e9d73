# Triton Inference Server 2.51.0 for the kind path, carrying the PYTHON BACKEND ONLY: no libtorch
# (PyTorch) or ONNX Runtime backend, which most Triton users serve PyTorch with. The server is the
# binary bundled in the nvidia-pytriton 0.7.0 wheel (servecmp/versions.py PYTRITON_VERSION,
# TRITON_VERSION; PyPI's `tritonserver` is a placeholder), exactly what the local path runs.
# Project pins: Python 3.11 (the wheel's stubs embed libpython3.11; the official python image is
# built with --enable-shared), torch 2.13.0 from the CPU wheel index (any other pin pulls CUDA),
# numpy 1.26.4 (the backend stub fails every response under numpy 2).
# tests/test_triton.py checks these pins, the user and the layout.
#
# Layout the chart relies on: `tritonserver` on PATH; its default --backend-directory
# /opt/tritonserver/backends (src/command_line_parser.cc v2.51.0) holding python/ with
# libtriton_python.so, triton_python_backend_utils.py and the 3.11 stub side by side (python_backend
# r24.10 src/python_be.cc looks for the stub beside the utils); model.py at /opt/servecmp/model.py
# (the chart copies it into each model version). Build context: the repository root.
FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# onnxruntime: an ONNX-source card is served as its .onnx in ONNX Runtime (servecmp/models/onnx_source.py)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install nvidia-pytriton==0.7.0 numpy==1.26.4 onnxruntime==1.23.0
ARG WHEEL=/usr/local/lib/python3.11/site-packages/pytriton/tritonserver
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia_pytriton.libs
RUN cp ${WHEEL}/python_backend_stubs/3.11/triton_python_backend_stub ${WHEEL}/backends/python/ \
    && mkdir -p /opt/tritonserver /opt/servecmp \
    && ln -s ${WHEEL}/backends /opt/tritonserver/backends \
    && ln -s ${WHEEL}/bin/tritonserver /usr/local/bin/tritonserver \
    && useradd --create-home --uid 1000 --user-group triton
COPY servecmp/servers/triton/model.py /opt/servecmp/model.py
USER 1000:1000
WORKDIR /opt/servecmp
# The chart mounts emptyDirs at /tmp, /dev/shm and the model repository under a read-only root.
ENV HOME=/tmp
ENTRYPOINT ["tritonserver"]
