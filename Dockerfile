# One image for every LabelLoop process: the web app (gunicorn), `manage.py worker`, and the
# Ray head and worker nodes (Ray must be the same version, on the same Python, on every node
# and in the driver, which one image guarantees). See docs/operations.md.
#
#   docker build -t labelloop .                                    # CPU PyTorch
#   docker build -t labelloop \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # CUDA PyTorch
#
# docker-compose.yml builds it for you (`docker compose build`).

# --- the web UI: frontend/dist ---------------------------------------------------------------
FROM node:22-bookworm-slim AS frontend
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# --- the Python app ----------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# The PyTorch build: the CPU wheel by default (small); for GPU nodes pass the CUDA index that
# matches the hosts' driver (cu126, cu128, ...). An unpinned `torch` from PyPI would pull a
# multi-GB CUDA build whatever the machine, so the spec and the index are explicit.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=labeling.settings \
    LABELLOOP_DATA_DIR=/data \
    LABELLOOP_FRONTEND_DIST=/app/frontend/dist

RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

WORKDIR /app
# Dependencies first, from pyproject.toml alone (empty packages stand in for the code), so that
# editing the code does not reinstall them. Extras: s3 (django-storages + boto3 for
# LABELLOOP_STORAGE=s3) and cluster (ray[default]: the dashboard and the per-node agent that
# answers the Ray health checks).
COPY pyproject.toml README.md ./
RUN mkdir -p labeling training \
    && touch labeling/__init__.py training/__init__.py \
    && pip install ".[s3,cluster]" \
    && pip uninstall -y labelloop \
    && rm -rf labeling training build

COPY manage.py ./
COPY labeling/ labeling/
COPY training/ training/
# Editable: /app is the one copy of the code, so BASE_DIR is /app, and Ray's worker processes
# (started by `ray start` in any directory) import `training` from here.
RUN pip install --no-deps -e .
COPY --from=frontend /frontend/dist/ frontend/dist/

# /data and /data/media exist, owned by the app's user, so that the named volumes mounted there
# start with that owner (Docker copies it into an empty volume).
RUN useradd --create-home --uid 1000 labelloop \
    && mkdir -p /data/media \
    && chown -R labelloop:labelloop /data
USER labelloop
VOLUME ["/data"]
EXPOSE 8000

# The web app; docker-compose.yml runs the worker and the Ray nodes from this image with their
# own commands. WEB_CONCURRENCY (gunicorn's own variable) sets the number of worker processes.
CMD ["gunicorn", "labeling.wsgi", "--bind", "0.0.0.0:8000", "--timeout", "120", \
     "--access-logfile", "-"]
