# syntax=docker/dockerfile:1
#
# rca-agent container images. Two targets, one recipe:
#
#   make image                                                 # core, tagged with the version
#   docker build --target core  -t rca-agent:0.1.0 .          # extractive + openai backends
#   docker build --target local -t rca-agent:0.1.0-local .    # + torch (CPU), transformers, peft
#
# The version has one source, `version` in pyproject.toml: `make image` passes it as VERSION and
# tags the image with it, and VERSION's default below must equal it (tests/test_packaging.py).
# Dependencies install from constraints.txt (`make constraints` regenerates it), so two builds
# of one commit get the same versions.
# The build stages install the project into a virtual environment at /opt/rca; the runtime
# stages copy only that environment onto a fresh slim Python image, so no compiler, pip cache
# or source tree ships. Every dependency installs from wheels, so no stage needs build tools.
# Settings come from the environment (RCA_*) or a YAML file (RCA_CONFIG); see docs/deploy.md.

# The base is pinned by digest (a tag moves under a rebuild). The digest is the multi-platform
# index of python:3.11-slim-bookworm; refresh it (e.g. monthly, for Debian's security fixes) with
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
# and replace it here; `--build-arg PYTHON_IMAGE=...` overrides it for one build.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---------------------------------------------------------------------------------------------
# build: the core install, into /opt/rca
FROM ${PYTHON_IMAGE} AS build
# pip byte-compiles into the environment: the runtime's root filesystem is read-only.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/rca
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY agent ./agent
COPY connectors ./connectors
COPY evals ./evals
COPY finetune ./finetune
RUN /opt/rca/bin/pip install --constraint constraints.txt .

# ---------------------------------------------------------------------------------------------
# build-local: adds the in-process `hf` backend. torch comes from PyTorch's CPU wheel index so
# the image does not carry CUDA libraries (GPU serving is vLLM's job, see the Helm chart).
FROM build AS build-local
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN /opt/rca/bin/pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
    && /opt/rca/bin/pip install --constraint constraints.txt '.[local]'

# ---------------------------------------------------------------------------------------------
# runtime: what both final images share. A fixed numeric UID lets Kubernetes verify
# runAsNonRoot; /data is the SQLite and report directory (a volume in production).
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="rca-agent" \
      org.opencontainers.image.description="Root-cause analysis agent for on-call teams: Alertmanager webhook, analyses API, Slack bot." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.documentation="docs/deploy.md"
RUN groupadd --gid 10001 rca \
    && useradd --uid 10001 --gid 10001 --home-dir /home/rca --create-home --shell /usr/sbin/nologin rca \
    && mkdir -p /data \
    && chown 10001:10001 /data
ENV PATH=/opt/rca/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    RCA_DATA_DIR=/data
WORKDIR /home/rca
EXPOSE 8080
# slim has no curl: ask /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RCA_SERVICE__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["rca"]
# Listen on all interfaces; `rca serve` then refuses to start without RCA_API_TOKENS and
# RCA_WEBHOOK_TOKEN. RCA_SERVICE__PORT moves the port (the HEALTHCHECK follows it).
CMD ["serve", "--host", "0.0.0.0"]

# ---------------------------------------------------------------------------------------------
# local: the runtime plus torch/transformers/peft.
FROM runtime AS local
COPY --from=build-local /opt/rca /opt/rca
USER 10001:10001

# ---------------------------------------------------------------------------------------------
# core: the default image (last stage, so a plain `docker build .` builds it).
FROM runtime AS core
COPY --from=build /opt/rca /opt/rca
USER 10001:10001
