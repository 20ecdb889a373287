# The two commands: `make demo` (embedded default, no server needed) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=
# The main session runs in this many processes (pytest-xdist; each has its own test database,
# Redis database and data directory: tests/parallel.py). 0 runs it in one process. Three on two
# cores: the tests mostly wait (on jobs, browsers, services), one process used about 1.1 cores.
PYTEST_WORKERS ?= 3
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

# The test suite talks to real PostgreSQL and Redis; override these to point elsewhere.
TEST_ENV := SECRET_KEY=test-only-secret-key-not-used-anywhere-else-4f9c2a7b1e \
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/mlplatform} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/0} HTTPS=0 STATIC_MANIFEST=0 DEBUG=0 \
	ALLOWED_HOSTS=localhost,127.0.0.1,testserver JOB_HEARTBEAT_SECONDS=1 JOB_STALE_AFTER_SECONDS=4 JOB_REQUEUE_AFTER_SECONDS=5 \
	DIAGNOSTIC_CRASH_JOBS=1 PREDICTION_LOG_QUEUE=0 EMAIL_BACKEND=django.core.mail.backends.locmem.EmailBackend \
	DJANGO_ALLOW_ASYNC_UNSAFE=true

.PHONY: demo test test-fast test-faults pytest lint format services chromium install bench clean

$(VENV)/.installed: requirements.txt clients/python/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# The Python client (clients/python), as API users install it; the tests import the
	# working tree's copy first (pytest pythonpath), this one proves it installs.
	$(PY) -m pip install -q --no-deps --no-build-isolation ./clients/python
	@touch $@

install: $(VENV)/.installed

# The demo's settings stay for every command of this checkout (`python manage.py createsuperuser`):
# settings read var/demo.env only when the environment configures nothing (see README).
DATA_DIR := $${MLPLATFORM_DATA_DIR:-var}

demo: $(VENV)/.installed
	@mkdir -p "$(DATA_DIR)" && printf 'DEBUG=1\n' > "$(DATA_DIR)/demo.env"
	DEBUG=1 $(PY) manage.py demo

services:
	@bash scripts/services.sh

# Debian's Chromium for the browser tests: installed with apt-get when missing (as root), or a
# clear message saying how.
chromium:
	@bash scripts/chromium.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # import contracts in pyproject.toml (docs/architecture.md)

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Two sessions: the fault tests start, kill and restart real workers and services, which must
# not share a process with the in-thread worker of the other tests.
test: $(VENV)/.installed services chromium lint
	$(TEST_ENV) $(PY) -m pytest -m "not slow" $(XDIST) --durations=15 $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest -m slow $(PYTEST_ARGS)

test-fast: $(VENV)/.installed services
	$(TEST_ENV) $(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

# Any selection of the main session's tests, browser included: make pytest PYTEST_ARGS="tests/datasets -q"
pytest: $(VENV)/.installed services chromium
	$(TEST_ENV) $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-faults: $(VENV)/.installed services chromium
	$(TEST_ENV) $(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: $(VENV)/.installed services
	$(PY) benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache
