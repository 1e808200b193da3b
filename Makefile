# Executable docs for putting self-hosted Reflector behind Authentik. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
# Python's byte-code cache stays on: `make test` starts a score of Python processes (xdist workers,
# a world's executor each), and with PYTHONDONTWRITEBYTECODE set each one compiles our modules and
# re-rewrites pytest's plugins from scratch (0.6 s of every process's start).
unexport PYTHONDONTWRITEBYTECODE
BIN := .venv/bin
BUILDDIR := _build
# Strict: a broken reference or any other warning fails the build. conf.py sits at the root.
SPHINXOPTS := -c . --nitpicky --fail-on-warning
# Where `make livehtml` serves; HOST=0.0.0.0 lets another machine (or the Windows side of WSL) in.
HOST ?= 127.0.0.1
PORT ?= 8000
# `make test SHARD=2/3`: this shard's part of the suite (whole pages, whole test files); see docs/testing.md.
SHARD ?=
# Two dependency sets: the docs set builds the site anywhere; the test set adds the Linux-only toolchain.
DOCS_SET := .venv/.installed
TEST_SET := .venv/.installed-test
NODE := node_modules/.installed

.PHONY: help html livehtml linkcheck test lint bench mutate check upstream screenshots clean node_modules

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z_-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

html: $(DOCS_SET) $(NODE) ## build the site into _build/html (any warning is an error); needs only requirements.txt
	$(BIN)/sphinx-build -M html docs $(BUILDDIR) $(SPHINXOPTS)

livehtml: $(DOCS_SET) $(NODE) ## serve the site on HOST:PORT (default 127.0.0.1:8000), rebuilding on every save
	$(BIN)/sphinx-autobuild docs $(BUILDDIR)/html $(SPHINXOPTS) --host $(HOST) --port $(PORT) --watch conf.py --watch docs/_static

linkcheck: $(DOCS_SET) ## check the pages' external links (needs the network; not part of make test)
	$(BIN)/sphinx-build -M linkcheck docs $(BUILDDIR) $(SPHINXOPTS)

test: $(TEST_SET) $(NODE) ## run every test (or SHARD=K/N of them); writes _build/junit.xml and _build/snippets/report.json
	$(BIN)/python -m pytest -n auto --dist loadgroup --junitxml=$(BUILDDIR)/junit.xml $(if $(SHARD),--shard=$(SHARD))

lint: $(TEST_SET) ## ruff check, ruff format --check, mypy --strict (scripts/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(TEST_SET) $(NODE) ## measure installs, the build, the doc tests, the sandbox and page weights; writes _build/bench.json and docs/_data/figures.json
	$(BIN)/python -m scripts.tools.bench --record

mutate: $(TEST_SET) $(NODE) ## break the docs on purpose (scripts/tools/mutations.yaml) and count what the tests catch; records the figures
	$(BIN)/python -m scripts.tools.mutate --record

check: $(TEST_SET) ## run one page with live progress: make check PAGE=docs/api-keys.md
	$(BIN)/python -m scripts.check $(PAGE)

upstream: $(TEST_SET) ## run every page (or PAGE=...) on a real Reflector checkout: make upstream REFLECTOR=~/src/reflector
	@[[ -n "$(REFLECTOR)" ]] || { echo "give the checkout: make upstream REFLECTOR=/path/to/reflector (a clone of Monadical-SAS/reflector)" >&2; exit 2; }
	$(BIN)/python -m scripts.check --reflector "$(REFLECTOR)" $(PAGE)

SCREENSHOTS := $(foreach shot,marks summary values,$(foreach mode,light dark,$(shot)-$(mode).png))
screenshots: ## copy the browser test's pictures of the marks and of the reader's values into docs/_static/screenshots (run make test first)
	mkdir -p docs/_static/screenshots
	cd $(BUILDDIR)/browser && cp $(SCREENSHOTS) $(CURDIR)/docs/_static/screenshots/

node_modules: $(NODE) ## install mermaid and axe-core from package-lock.json

clean: ## remove build output (_build/)
	rm -rf $(BUILDDIR)

$(DOCS_SET): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "the site needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv .venv
	$(BIN)/pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(TEST_SET): $(DOCS_SET) requirements-test.txt
	@[[ $$(uname -s) == Linux ]] || { echo "the test toolchain runs on Linux only (bubblewrap, user namespaces); here, use make html or make livehtml, and let CI run the tests" >&2; exit 1; }
	$(BIN)/pip install --disable-pip-version-check -r requirements-test.txt
	touch $@

$(NODE): package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing; install Node.js and npm (Debian/Ubuntu: apt-get install npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@
