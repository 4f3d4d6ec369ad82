# reid-hpo image: one image for workers, the dashboard and one-off CLI commands.
#
#   docker build -t reid-hpo:0.1.0 .
#   docker run --rm --gpus all --shm-size=8g -e REID_HPO_STORAGE \
#       reid-hpo:0.1.0 worker mars-map-random --gpus all
#
# --shm-size: DataLoader workers hand batches over through /dev/shm, which Docker caps at 64 MB;
# at the recipe's batch size (32 clips x 4 frames x 224x112, 4 workers) that ends in "bus error"
# crashes. docker-compose.yml sets shm_size, deploy/k8s mounts a memory emptyDir at /dev/shm.
#
# The storage URL (with its password) is given at run time through $REID_HPO_STORAGE; nothing
# secret is baked into the image. torch and torchvision bundle the CUDA runtime: the host
# only needs the NVIDIA driver and container toolkit. Which CUDA build is a build argument
# (README.md, "GPU nodes", says which driver each needs):
#
#   docker build --build-arg TORCH_CUDA=cu126 -t reid-hpo:0.1.0-cu126 .   # drivers >= 525, V100
#   docker build --build-arg TORCH_CUDA=cu130 -t reid-hpo:0.1.0 .         # drivers >= 580

# ---------------------------------------------------------------------------- builder
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

# The heavy, rarely changing layer first, pinned exactly as in pyproject.toml, from the
# PyTorch index of the chosen CUDA build (cu130 is also what PyPI's default wheel holds).
ARG TORCH_CUDA=cu130
RUN pip install --no-cache-dir --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
        torch==2.14.1 torchvision==0.29.1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY reid_core/ reid_core/
COPY hpo/ hpo/
# A regular (non-editable) install: the final stage gets the venv, not the sources.
RUN pip install --no-cache-dir . \
    && python -c "import hpo, reid_core, torch, torchvision"

# ------------------------------------------------------------------------------ final
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="reid-hpo" \
      org.opencontainers.image.description="Optuna hyperparameter search for video person re-ID" \
      org.opencontainers.image.licenses="MIT"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/reid

# A fixed, numeric uid/gid (10001) so that Kubernetes' runAsNonRoot can verify it and files on
# shared volumes get a predictable owner.
RUN groupadd --system --gid 10001 reid \
    && useradd --system --uid 10001 --gid reid --create-home --home-dir /home/reid \
       --shell /usr/sbin/nologin reid

COPY --from=builder /opt/venv /opt/venv

# A C compiler for `compile: true`: Triton builds a small helper with it at first use, and
# reid-hpo refuses `compile: true` in one line where no cc/gcc is found. Versions: bookworm's
# gcc 12 and the libc headers matching the base image's libc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "gcc=4:12.2.0-*" "libc6-dev=2.36-9+deb12u*" \
    && rm -rf /var/lib/apt/lists/*

# Relative paths in study specs (dataset root "data/...", artifacts root "runs") resolve here;
# docker-compose.yml mounts the datasets on ./data and a shared volume on ./runs.
WORKDIR /srv/reid-hpo
COPY --chown=reid:reid studies/ studies/
# The torch hub cache, where reid-hpo reads the ImageNet weights (never downloading them):
# made here and owned by reid so that an empty volume mounted on it (compose's `weights`,
# filled by its fetch-weights service) takes that owner.
RUN mkdir -p data runs /home/reid/.cache/torch/hub/checkpoints \
    && chown reid:reid data runs \
    && chown -R reid:reid /home/reid/.cache

USER 10001:10001

EXPOSE 8080

# One image serves long-lived workers (no port to probe), the dashboard and one-shot commands,
# so there is no image-wide probe: docker-compose.yml gives the dashboard its HTTP check, and
# dead workers are seen through Optuna's heartbeats.
HEALTHCHECK NONE

ENTRYPOINT ["reid-hpo"]
CMD ["--help"]
