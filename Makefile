# Two commands do all setup on a fresh machine:
#   make run    install, migrate, load the demo world, serve with GraphiQL on http://127.0.0.1:8000/graphql
#   make test   install, then run the whole suite on SQLite and PostgreSQL
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test bench clean

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

test: $(STAMP)
	bash scripts/ensure-postgres.sh
	$(BIN)/pytest

clean:
	rm -rf $(VENV) mileage-gateway.db* mileage-gateway.secret
