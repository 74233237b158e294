# LabelLoop: `make demo` runs the product, `make test` runs every check. Both set up .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch. A looser spec makes pip fetch a multi-GB CUDA build; on a GPU
# machine, set TORCH_SPEC to the build that matches its CUDA.
TORCH_SPEC ?= torch==2.13.0
# Where `make demo` serves (another port: make demo DEMO_ADDR=127.0.0.1:8001).
DEMO_ADDR ?= 127.0.0.1:8000
STAMP := $(VENV)/.installed

.PHONY: install frontend frontend-test demo test lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# The web UI (needs Node 20+): frontend/dist, served by Django on the same origin.
frontend:
	cd frontend && npm ci && npm run build

# Vitest: the outbox (retry, persistence) and the hotkey map.
frontend-test: frontend
	cd frontend && npm run lint && npm test

demo: install frontend
	LABELLOOP_DEBUG=$${LABELLOOP_DEBUG:-true} $(PY) manage.py demo --addr $(DEMO_ADDR)

# ruff, and the layer contracts of DESIGN.md section 6 (import-linter, [tool.importlinter] in
# pyproject.toml): apps import only downwards, training/ never imports Django, the web side
# never imports torch, ray or the worker.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint frontend frontend-test
	$(PY) manage.py makemigrations --check --dry-run --settings=labeling.settings >/dev/null \
		|| (echo "models changed without a migration: run manage.py makemigrations" && exit 1)
	$(PY) -m pytest

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) -m bench.ingest
	$(PY) -m bench.queue
	$(PY) -m bench.round
	$(PY) -m bench.score
	$(PY) -m bench.fetch
	$(PY) -m bench.new_images

clean:
	rm -rf $(VENV) var
