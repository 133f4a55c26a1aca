# Two commands work from a clean clone: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PORT ?= 8000
# The demo always uses the embedded setup, whatever the shell exports.
DEMO_ENV := env -u DATABASE_URL -u DATABASE_MIGRATE_URL -u REDIS_URL DEBUG=1
# `make run`, `make worker` and lint's migration check are development: DEBUG on unless the shell says
# otherwise (the settings themselves default to production).
RUN_ENV := env DEBUG=$${DEBUG:-1}

.PHONY: demo test lint run bench mutation worker clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py build_demo
	$(DEMO_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

run: $(STAMP)
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput $${DATABASE_MIGRATE_URL:+--database owner}
	$(RUN_ENV) $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

worker: $(STAMP)
	$(RUN_ENV) $(BIN)/celery -A lineage_site worker --beat --loglevel=info

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(RUN_ENV) $(BIN)/python manage.py makemigrations --check --dry-run

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run

# Mutation testing of the rule modules (tests/mutation/run.py): slow, so not part of `make test`.
# MUTATION_POSTGRES (a server URL without a database) runs the PostgreSQL-only code's mutants there.
mutation: $(STAMP)
	$(BIN)/pip install --quiet -r requirements-mutation.txt
	$(BIN)/python -m tests.mutation.run

clean:
	rm -rf $(VENV) var
