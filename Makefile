# crbroker developer commands. `make demo` runs the whole product end to end; `make test` passes the tests.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SNYK_BROKER_DIR ?= .cache/snyk-broker
SNYK_BROKER_VERSION ?= 5.22.14
APT_PACKAGES := docker-registry rpm db5.3-util apache2-utils postgresql jq chromium
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: deps venv apt npm test lint typecheck demo bench screenshots clean

deps: apt venv npm

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

# tests/e2e/test_images.py builds and runs the images with these (no Docker engine here)
IMAGE_APT_PACKAGES := buildah podman runc debootstrap
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! command -v npm >/dev/null 2>&1; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@missing=""; for p in $(IMAGE_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

npm: $(SNYK_BROKER_DIR)/node_modules/snyk-broker/package.json

$(SNYK_BROKER_DIR)/node_modules/snyk-broker/package.json:
	mkdir -p $(SNYK_BROKER_DIR)
	cd $(SNYK_BROKER_DIR) && { test -f package.json || npm init -y >/dev/null; } && \
	  npm install --no-audit --no-fund --loglevel=error snyk-broker@$(SNYK_BROKER_VERSION)

test: deps
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

demo: deps
	$(PY) -m deploy.demo

bench: deps
	$(PY) bench/tunnel.py
	$(PY) bench/scan.py
	$(PY) bench/agent.py
	$(PY) bench/server_memory.py
	$(PY) bench/control_plane.py
	$(PY) bench/control_plane_ingest.py

# the console screenshots in docs/ (README), taken by the browser tests against the real stack
screenshots: deps
	CRBROKER_SCREENSHOTS=$(CURDIR)/docs $(PY) -m pytest -q tests/e2e/test_console.py

clean:
	rm -rf $(VENV) .cache .pytest_cache
