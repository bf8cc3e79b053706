# The README's two commands: `make demo` and `make test`. Each creates .venv if missing and installs
# everything it needs from the lock (uv.lock), so a fresh clone needs only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
SYNCED := $(VENV)/.synced
# aws-sam-cli pins boto3 exactly, so it lives in a venv of its own.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_CLI_VERSION := 1.170.0
# checkov pins its own dependencies (older networkx, packaging, ...) below what this project's lock holds, so it
# too lives in a venv of its own; run offline (--skip-download), it would otherwise call its vendor's API.
CHECKOV_VENV := .venv-checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_VERSION := 3.3.30
export SAM_CLI_TELEMETRY := 0

.PHONY: demo storefront browser java test test-unit test-integration test-e2e lint requirements build validate glue glue-publish clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(SYNCED): $(PY) pyproject.toml uv.lock
	$(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(UV) sync --frozen --all-extras --quiet
	touch $(SYNCED)

demo: $(SYNCED)
	$(PY) -m infra.local.demo $(DEMO_ARGS)

# The demo, then the storefront stays up on loopback (its URL is printed) until Ctrl-C.
storefront: $(SYNCED)
	$(PY) -m infra.local.demo --keep-running $(DEMO_ARGS)

# Headless Chromium for the browser tests (tests/e2e/test_storefront.py): Debian's packages, installed once.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver (Debian packages) for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq > /dev/null && apt-get install -y -qq chromium chromium-driver > /dev/null; \
	fi

# A Java runtime for the Spark engine's tests (tests/integration/test_spark_parity.py: PySpark runs on a JVM):
# Debian's package, installed once, like Chromium above. Java 17 is what Spark 3.5 (AWS Glue 5.0) runs on.
java:
	@if ! command -v java > /dev/null; then \
		echo "installing openjdk-17-jre-headless (Debian package) for the Spark tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq > /dev/null && apt-get install -y -qq openjdk-17-jre-headless > /dev/null; \
	fi

$(SAM): | $(SYNCED)
	$(UV) venv --quiet --python $(PYTHON) $(SAM_VENV)
	$(UV) pip install --quiet --python $(SAM_VENV)/bin/python "aws-sam-cli==$(SAM_CLI_VERSION)"

$(CHECKOV): | $(SYNCED)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_VENV)
	$(UV) pip install --quiet --python $(CHECKOV_VENV)/bin/python "checkov==$(CHECKOV_VERSION)"

lint: $(SYNCED) $(SAM) $(CHECKOV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/cfn-lint template.yaml
	$(CHECKOV) --config-file .checkov.yaml
	$(SAM) validate --lint

validate: $(SAM)
	$(SAM) validate --lint

# What devops run before `sam deploy`: functions/Makefile builds each function from its locked requirements
# with the project's uv (hence .venv/bin first on PATH).
build: $(SYNCED) $(SAM)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(SAM) build

test: lint browser java
	$(PY) -m pytest

# Each layer of `make test` on its own. Unit (tests/unit, tests/infrastructure): no servers, about a minute.
test-unit: $(SYNCED)
	$(PY) -m pytest -m "not integration"

# Integration (tests/integration): moto_server, uvicorn and the functions on loopback, started by the tests.
test-integration: $(SYNCED) java
	$(PY) -m pytest tests/integration

# End to end (tests/e2e): the demo, and the storefront in headless Chromium.
test-e2e: $(SYNCED) browser
	$(PY) -m pytest tests/e2e

# Each function's deployment dependencies, exported from the lock (a test checks they are current).
requirements: $(SYNCED)
	$(UV) export --frozen --no-dev --no-default-groups --no-emit-project --no-header --quiet \
		--prune boto3 --prune botocore --prune s3transfer > functions/requirements-ingest.txt
	$(UV) export --frozen --no-dev --no-default-groups --no-emit-project --no-header --quiet --extra serve \
		--prune boto3 --prune botocore --prune s3transfer > functions/requirements-serve.txt
# The collector is serve's web stack without its models or table: fastapi, mangum, pydantic, powertools.
	$(UV) export --frozen --no-dev --no-default-groups --no-emit-project --no-header --quiet --extra serve \
		--prune onnxruntime --prune numpy --prune markupsafe --prune pynamodb \
		--prune boto3 --prune botocore --prune s3transfer > functions/requirements-collect.txt
# The retraining Glue job: the trainer (export) and onnxruntime (serve's loader scores the live version), without
# serve's web stack; boto3/botocore come with Glue.
	$(UV) export --frozen --no-dev --no-default-groups --no-emit-project --no-header --quiet --extra export \
		--extra serve --prune fastapi --prune mangum \
		--prune boto3 --prune botocore --prune s3transfer > infra/glue/requirements.txt

# The retraining Glue job's code (a zip for --extra-py-files) and locked dependencies (requirements.txt for
# --additional-python-modules), in build/glue; `glue-publish` uploads both to the deployed stack's artifact
# bucket (glue/), where the job reads them. Run it after `sam deploy` and after changing the code or the lock.
STACK ?= personalization
glue: $(SYNCED)
	$(PY) -m infra.glue.bundle --out build/glue

glue-publish: $(SYNCED)
	$(PY) -m infra.glue.publish --stack $(STACK) --folder build/glue

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam build .pytest_cache .mypy_cache .ruff_cache .hypothesis
