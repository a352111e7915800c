# The template's own tooling. Every target creates .venv first; nothing else is assumed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_DIR := build/demo
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install demo test test-long bench round-trips locks lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "error: $(PYTHON) is older than Python 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r pyproject.toml --extra dev
	@touch $@

install: $(INSTALLED) ## Create .venv with cookiecutter, pytest, pytest-cookies, ruff and mypy

demo: $(INSTALLED) ## Render a project with the default answers into build/demo and serve it on SQLite
	rm -rf $(DEMO_DIR)
	$(BIN)/cookiecutter --no-input --output-dir $(DEMO_DIR) .
	$(MAKE) -C $(DEMO_DIR)/acme_backend run PORT=$(PORT)

test: $(INSTALLED) ## Run every template test (PostgreSQL too when TEST_DATABASE_URL is set)
	$(BIN)/pytest

test-long: $(INSTALLED) ## The generated suites with their long profiles (1,000 examples a property)
	GENERATED_TEST_TARGET=test-long $(BIN)/pytest -k test_generated_test_suite_passes

# make bench [DB=sqlite|postgresql|both] [BASE=<git ref> [VARIANT=no|yes]] [ROUNDS=16] [SECONDS=2]
# DB: sqlite by default, postgresql for BASE runs (127.0.0.1:5432, superuser postgres, trust).
bench: $(INSTALLED) ## "yes" against "no" (or BASE=<ref> against now) under wrk, side by side (docs/benchmarks.md)
	$(BIN)/python -m tools.bench $(if $(DB),--db $(DB)) $(if $(BASE),--base $(BASE)) \
		$(if $(VARIANT),--variant $(VARIANT)) $(if $(ROUNDS),--rounds $(ROUNDS)) \
		$(if $(SECONDS),--seconds $(SECONDS))

REFS ?= 2dde805 HEAD
round-trips: $(INSTALLED) ## Round trips to PostgreSQL per request, at each of REFS (HEAD: the working tree)
	$(BIN)/python -m tools.round_trips $(REFS)

# The generated project's uv.lock, one per python_version and include_sentry (tools/locks.py).
LOCK_ARGS ?=
locks: $(INSTALLED) ## Lock every variant's uv.lock (LOCK_ARGS=--upgrade moves the pins; --check only checks)
	$(BIN)/python -m tools.locks $(LOCK_ARGS)

# mypy reads the hooks as cookiecutter runs them: rendered (tools/render_hooks.py says why).
lint: $(INSTALLED) ## ruff and strict mypy over the hooks, the template tests and tools/
	$(BIN)/ruff check hooks tests tools
	$(BIN)/ruff format --check hooks tests tools
	$(BIN)/python -m tools.render_hooks build/lint/hooks
	$(BIN)/mypy

clean: ## Remove .venv and build/
	rm -rf $(VENV) build .pytest_cache .ruff_cache .mypy_cache
