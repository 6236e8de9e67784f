# The two commands of the README: `make run` and `make test`. Each sets up
# what it needs on a machine with only Python 3.11 and make.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PORT   ?= 8000

.PHONY: run test bench install check lint clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## make run: migrate, load the demo club, serve the API on 127.0.0.1:$(PORT)
## with a Celery worker and beat. DATABASE_URL / REDIS_URL when set, else
## SQLite and a broker on the local filesystem.
run: $(STAMP)
	PORT=$(PORT) PY=$(PY) bin/run

## make test: the whole suite, on as many processes as there are cores;
## Postgres at localhost:5432 if it answers (or DATABASE_URL), else SQLite
## with the Postgres-only tests skipped.
TEST_WORKERS ?= auto
test: $(STAMP)
	PY=$(PY) bin/test -n $(TEST_WORKERS) $(PYTEST_ARGS)

## make bench: figures against a bare baseline on the same stack (Postgres).
bench: $(STAMP)
	PY=$(PY) bin/bench

## make lint: style, the layers, migrations in step with the models, and
## production settings that pass Django's deployment checks.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	DATABASE_URL=sqlite://:memory: $(PY) manage.py makemigrations --check --dry-run
	$(MAKE) --no-print-directory check

check: $(STAMP)
	$(PY) manage.py check
	DJANGO_SETTINGS_MODULE=config.settings.production SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	  ALLOWED_HOSTS=lojal.example.com DATABASE_URL=sqlite:///tmp/x.sqlite3 \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf $(VENV) var staticfiles
