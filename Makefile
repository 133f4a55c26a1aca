# Two commands work from a clean clone: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
UV := uv>=0.9,<1
UV_PIP := $(BIN)/uv pip install --quiet --python $(BIN)/python
PORT ?= 8000
# The demo always uses the embedded setup, whatever the shell exports.
DEMO_ENV := env -u DATABASE_URL -u DATABASE_MIGRATE_URL -u REDIS_URL DEBUG=1
# `make run`, `make worker` and lint's migration check are development: DEBUG on unless the shell says
# otherwise (the settings themselves default to production).
RUN_ENV := env DEBUG=$${DEBUG:-1}
# uv installs without compiling to bytecode (pip compiled every module at install); Python compiles a
# module on its first import and keeps the result. A shell's PYTHONDONTWRITEBYTECODE would have every
# process (migrate, the demo build, the server, each test's subprocess) compile everything again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test lint run bench faults mutation worker clean

# uv installs the requirements (pip took a minute, uv a few seconds). It comes from PyPI into the venv,
# installed by the interpreter's own pip from outside (a venv without pip is made in a tenth of a
# second, one with pip in three), or by the venv's own pip when the interpreter has none.
$(BIN)/uv:
	test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet "$(UV)" \
		|| { $(BIN)/python -m ensurepip --default-pip >/dev/null && $(BIN)/python -m pip install --quiet "$(UV)"; }

$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/uv
	$(UV_PIP) -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# The demo serves without the autoreloader (`make run` has it): no second process to start, and no
# polling of every source file each second.
demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/python manage.py build_demo --migrate
	$(DEMO_ENV) $(BIN)/python manage.py runserver --noreload 127.0.0.1:$(PORT)

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

# The load benchmark's locust comes from requirements-bench.txt, kept out of `make test`'s install.
bench: $(STAMP)
	$(UV_PIP) -r requirements-bench.txt
	$(BIN)/python -m tests.benchmarks.run

# The fault campaign (README, Fault campaign): workers, Redis, PostgreSQL and MLflow killed and restarted
# mid-work, on services of the campaign's own. Minutes long, so not part of `make test`: `pytest` leaves
# tests/faults/ out unless it is named (tests/conftest.py), as it is here.
faults: $(STAMP)
	$(BIN)/pytest tests/faults

# Mutation testing of the rule modules (tests/mutation/run.py): slow, so not part of `make test`.
# MUTATION_POSTGRES (a server URL without a database) runs the PostgreSQL-only code's mutants there.
mutation: $(STAMP)
	$(UV_PIP) -r requirements-mutation.txt
	$(BIN)/python -m tests.mutation.run

clean:
	rm -rf $(VENV) var
