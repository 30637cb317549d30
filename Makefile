# Two commands do all setup on a fresh machine:
#   make run    install, migrate, load the demo world, serve with GraphiQL on http://127.0.0.1:8000/graphql
#   make test   install, then run the whole suite on SQLite and PostgreSQL
# and, while iterating:
#   make test-fast   the same on SQLite only (no PostgreSQL, no multi-process tests)
#   make lint        ruff (lint and format check), import-linter's layer contracts and mypy,
#                    all configured in pyproject.toml; CI runs it before the tests
# Both run one pytest process per core (pytest-xdist) and print a line per test file;
# `make test JOBS=0` runs in one process, `make test PYTEST_ARGS='-x tests/gateway'` narrows it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
JOBS   ?= auto
PYTEST_ARGS ?=
# loadgroup: tests marked as one group (tests/conftest.py, SEVERAL_PROCESSES) share a worker.
XDIST   = -n $(JOBS) --dist loadgroup

.PHONY: install run lint test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mileage-gateway migrate
	$(BIN)/mileage-gateway demo
	$(BIN)/mileage-gateway serve --host 127.0.0.1 --port 8000

# PYTHONPATH=.: import-linter and mypy read this checkout's packages, whatever the venv points at.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports
	PYTHONPATH=. $(BIN)/mypy

test: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-redis.sh
	GATEWAY_TEST_BACKENDS=sqlite,postgresql $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	GATEWAY_TEST_BACKENDS=sqlite $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) mileage-gateway.db* mileage-gateway.secret
