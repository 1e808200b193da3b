# Executable docs for putting self-hosted Reflector behind Authentik. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
BIN := .venv/bin
BUILDDIR := _build
# Strict: a broken reference or any other warning fails the build. conf.py sits at the root.
SPHINXOPTS := -c . --nitpicky --fail-on-warning
VENV := .venv/.installed
NODE := node_modules/.installed

.PHONY: help html livehtml linkcheck test bench mutate check screenshots clean node_modules

help: ## list the targets
	@awk -F ':.*## ' '/^[a-z_-]+:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

html: $(VENV) $(NODE) ## build the site into _build/html (any warning is an error)
	$(BIN)/sphinx-build -M html docs $(BUILDDIR) $(SPHINXOPTS)

livehtml: $(VENV) $(NODE) ## serve the site on 127.0.0.1:8000, rebuilding on every save
	$(BIN)/sphinx-autobuild docs $(BUILDDIR)/html $(SPHINXOPTS) --watch conf.py --watch docs/_static

linkcheck: $(VENV) ## check the pages' external links (needs the network; not part of make test)
	$(BIN)/sphinx-build -M linkcheck docs $(BUILDDIR) $(SPHINXOPTS)

test: $(VENV) $(NODE) ## run every test: each page's snippets in a sandbox, the tooling, the site in Chromium
	$(BIN)/python -m pytest -n auto --dist loadgroup

bench: $(VENV) $(NODE) ## measure the build, the doc tests, the sandbox and page weights; writes _build/bench.json
	$(BIN)/python -m scripts.tools.bench --record

mutate: $(VENV) $(NODE) ## break the docs on purpose (scripts/tools/mutations.yaml) and count what the tests catch
	$(BIN)/python -m scripts.tools.mutate --record

check: $(VENV) ## run one page with live progress: make check PAGE=docs/api-keys.md
	$(BIN)/python -m scripts.check $(PAGE)

SCREENSHOTS := $(foreach shot,marks summary,$(foreach mode,light dark,$(shot)-$(mode).png))
screenshots: ## copy the browser test's pictures of the marks into docs/_static/screenshots (run make test first)
	mkdir -p docs/_static/screenshots
	cd $(BUILDDIR)/browser && cp $(SCREENSHOTS) $(CURDIR)/docs/_static/screenshots/

node_modules: $(NODE) ## install mermaid from package-lock.json

clean: ## remove build output (_build/)
	rm -rf $(BUILDDIR)

$(VENV): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv .venv
	$(BIN)/pip install --disable-pip-version-check -r requirements.txt
	touch $@

$(NODE): package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing; install Node.js and npm (Debian/Ubuntu: apt-get install npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@
