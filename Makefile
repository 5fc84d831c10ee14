# make run  : install what is missing, then serve the app on http://127.0.0.1:8000
# make test : install what is missing (Chromium and PostgreSQL included), then run every test
VENV    := .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST    ?= 127.0.0.1
PORT    ?= 8000

# Front-end libraries, pinned: installed from the npm registry into build/npm (ignored, never
# committed) and served by the app under /static/vendor/<name>/ (app/main.py VENDORED).
NPM_PACKAGES := uplot@1.6.32
VENDOR       := build/npm
VENDOR_STAMP := $(VENDOR)/.installed-$(subst @,-,$(subst $(eval) ,_,$(NPM_PACKAGES)))

.PHONY: run test install vendor chromium postgres lint bench clean torchvision-reference

run: install vendor
	$(VENV)/bin/cnnviz serve --host $(HOST) --port $(PORT)

test: install vendor chromium postgres
	$(VENV)/bin/ruff check cnncore app tests benchmarks
	$(PY) -m pytest

install: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# torch 2.13.0 first, where none is present: the CPU wheel on this disk (a bare `torch`
# requirement would pull a multi-GB CUDA build); then the project with its dev extras.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $(STAMP)

vendor: $(VENDOR_STAMP)

$(VENDOR_STAMP):
	@command -v npm >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm; }
	npm install --prefix $(VENDOR) --no-save --no-audit --no-fund $(NPM_PACKAGES)
	touch $@

# Debian's Chromium for the browser tests (Playwright's own browser download cannot work offline),
# and a CJK font so Korean pages render (and screenshot) as text rather than boxes.
chromium:
	@command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -q "Noto Sans CJK" || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk; }

# PostgreSQL's server binaries: the run-store and several-workers tests start a throwaway server
# (tests/app/conftest.py); without them those tests skip.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq postgresql; }

lint: install
	$(VENV)/bin/ruff check cnncore app tests benchmarks
	$(VENV)/bin/ruff format --check cnncore app tests benchmarks

bench: install vendor chromium
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

# torchvision 0.28.0's wheel (no dependencies, never installed): the published-weights tests then
# check their fixtures against torchvision's own models (tests/cnncore/torchvision_reference.py)
torchvision-reference: install
	mkdir -p $(HOME)/.cache/cnnviz
	$(PIP) download torchvision==0.28.0 --no-deps -d $(HOME)/.cache/cnnviz

clean:
	rm -rf $(VENV) $(VENDOR) var/*.sqlite3 .pytest_cache
