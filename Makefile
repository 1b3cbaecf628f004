# Two entry points: `make app` (set up, then serve the app on the built-in demo) and
# `make test` (set up, then run lint and the whole test suite). Both create .venv on first use.
# `make lab`: JupyterLab on notebooks/ with the project's kernel (.venv), on 127.0.0.1, no browser.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5006
LAB_PORT ?= 8888

.PHONY: setup app lab test test-fast test-core test-ui lint browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first: the pinned CPU wheel, so the project's range does not pull a CUDA build
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[app,notebooks,test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

app: setup
	$(BIN)/panel serve app/ --port $(PORT) --num-procs 1

# The notebooks import the app's page (`from app.page import App`): the repository root goes on PYTHONPATH.
# Open the URL with the token that JupyterLab prints.
lab: setup
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(BIN)/jupyter lab --no-browser --ip=127.0.0.1 \
	  --port=$(LAB_PORT) --ServerApp.root_dir="$(CURDIR)/notebooks" $(if $(filter 0,$(shell id -u)),--allow-root)

# Headless Chromium for the browser tests (Debian package; Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: install it (e.g. sudo apt-get install chromium) for the ui tests"; fi; }

lint: setup
	$(BIN)/ruff check rstn_core app tests benchmarks

# the quick loop while editing: no browser, no slow tests
test-fast: setup
	$(BIN)/python -m pytest -m "not ui and not slow"

# every test but the browser ones (slow ones included)
test-core: setup
	$(BIN)/python -m pytest -m "not ui"

test-ui: setup browser
	$(BIN)/python -m pytest -m ui

test: lint test-core test-ui

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
