# geokd: one image for the API, the workers and the dashboard (the command picks the role).
#   docker build -t geokd .                                   # CPU torch (small)
#   docker build -t geokd:gpu --build-arg TORCH_VARIANT=cu128 .  # CUDA torch for worker-gpu
FROM python:3.11-slim

# Which PyTorch wheel index to use: `cpu` keeps the image small; `cu128` (or another CUDA
# variant) for GPU workers. torch is pinned in pyproject.toml, so only the build variant changes.
ARG TORCH_VARIANT=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GEOKD_HOME=/data \
    HF_HUB_OFFLINE=1

RUN useradd --create-home --uid 1000 geokd && mkdir -p /data /models /datasets \
    && chown geokd:geokd /data /models /datasets

WORKDIR /app
COPY pyproject.toml README.md ./
COPY geokd_core ./geokd_core
COPY api ./api
COPY worker ./worker
COPY dashboard ./dashboard
RUN pip install --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        ".[api,worker,dashboard,gguf]"

USER geokd
VOLUME ["/data"]
EXPOSE 8000 8501
ENTRYPOINT ["geokd"]
CMD ["--help"]
