# huisclos — set-up, run, test. `make install` is idempotent and fast when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
FOLDER ?= sample/Clients
APT_PACKAGES := tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng poppler-utils \
	libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui libmagic1 pandoc
SOURCES := $(shell find config connectors index pipeline -name '*.py' 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages run test test-fast lint typecheck eval bench clean

install: system-packages $(VENV)/.deps-stamp $(VENV)/.project-stamp

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# torch first, pinned to the CPU build; then every other package from the lock,
# without dependency resolution so that nothing unpinned (CUDA torch,
# torchvision) can slip in.
$(VENV)/.deps-stamp: requirements.lock | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps -r requirements.lock
	touch $@

$(VENV)/.project-stamp: pyproject.toml $(SOURCES) $(VENV)/.deps-stamp
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $@

run: install
	$(VENV)/bin/huisclos index "$(FOLDER)"
	$(VENV)/bin/huisclos status
	@echo
	@echo 'Search it:  .venv/bin/huisclos search "montant TTC de la facture 2024-117" [--client NAME]'

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not integration"

lint: install
	$(VENV)/bin/ruff check config connectors index pipeline tests bench
	$(VENV)/bin/ruff format --check config connectors index pipeline tests bench

typecheck: install
	$(VENV)/bin/mypy config connectors index pipeline

bench: install
	$(PY) bench/ingest.py

eval: install
	$(PY) bench/compare_embedders.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
