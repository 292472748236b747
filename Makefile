# alipay-refund-worker: the two commands a newcomer needs are `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

.PHONY: venv services browser lint imports typecheck unit test demo bench chaos clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

services:
	@bash scripts/ensure-services.sh

# Chromium and chromedriver for the console's browser tests (tests/e2e/test_console_browser.py).
browser:
	@bash scripts/ensure-browser.sh

lint: venv
	$(BIN)/ruff check worker sandbox devtools tests bench

typecheck: venv
	$(BIN)/mypy

# The layers of the tree (contracts in pyproject.toml, [tool.importlinter]).
imports: venv
	$(BIN)/lint-imports --no-cache

unit: venv
	$(BIN)/pytest tests/unit

test: venv services browser lint imports typecheck
	$(BIN)/pytest

# `make demo MODE=pwd`: the password service, approved in the operator console.
demo: venv services
	$(BIN)/refund-worker demo $(if $(MODE),--mode $(MODE))

# The fault-injection suite, long profile (a short profile runs inside `make test`).
chaos: venv services
	$(BIN)/python -m tests.chaos --profile long

# Benchmarks against the raw tools, measured in the same run; writes bench/results/latest.md.
bench: venv services
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
