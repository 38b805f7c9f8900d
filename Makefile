# Two entry points: `make run` (the service on SQLite, local models, no API key) and
# `make test` (lint, types and the whole test suite). Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest venv dev system-deps bench clean test-deploy

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install --quiet -e .

dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"

run: venv
	$(BIN)/xintu serve

# Browser tests use Debian's Chromium; fonts render the Chinese UI. Installed when missing
# and we are root (CI, the dev container); otherwise those tests say why they skip.
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null && \
	    { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || \
	      ! command -v wrk >/dev/null || [ ! -d /usr/share/fonts/opentype/noto ]; }; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        chromium chromium-driver fonts-noto-cjk wrk >/dev/null; \
	fi

lint: dev
	$(BIN)/ruff check xintu tests bench
	$(BIN)/ruff format --check xintu tests bench

typecheck: dev
	$(BIN)/mypy xintu

pytest: dev system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

# The deploy files built and run for real with podman (docs/DEPLOYMENT.md); as root it
# installs podman, buildah, mmdebstrap, runc and docker-compose when missing. .ci/run calls it.
test-deploy: dev
	PYTHON=$(BIN)/python deploy/test-deploy.sh

bench: dev
	$(BIN)/python bench/classify.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
