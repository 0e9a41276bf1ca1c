# ledgerlink — a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit bench serve services browsers clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ledgerlink demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

services:
	@bash scripts/services.sh

# Debian's Chromium for the browser tests (Playwright drives it; never a browser download).
browsers:
	@test -x /usr/bin/chromium || (echo "installing Debian's chromium for the browser tests" && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: $(STAMP) lint services browsers
	$(BIN)/python -m pytest -n 2 -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

serve: $(STAMP)
	$(BIN)/ledgerlink serve --demo

bench: $(STAMP)
	$(BIN)/ledgerlink bench

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
