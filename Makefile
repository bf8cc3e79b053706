# The README's two commands: `make demo` and `make test`. Each creates .venv if missing and installs
# everything it needs from the lock (uv.lock), so a fresh clone needs only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
SYNCED := $(VENV)/.synced

.PHONY: demo test test-fast lint bench-ingest clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(SYNCED): $(PY) pyproject.toml uv.lock
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --quiet
	touch $(SYNCED)

demo: $(SYNCED)
	$(PY) -m infra.local.demo $(DEMO_ARGS)

lint: $(SYNCED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/cfn-lint template.yaml

test: lint
	$(PY) -m pytest

# Unit tests only: no servers, a few seconds.
test-fast: $(SYNCED)
	$(PY) -m pytest -m "not integration"

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis
