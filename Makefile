# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make run    set up the virtualenv, start giftcast on the embedded Valkey
#   make test   set up the virtualenv, run the whole test suite
#   make bench  every benchmark scenario, short (a few minutes; benchmarks/RESULTS.md has the full runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

BENCH_STAMP := $(VENV)/.bench-stamp
NODE_PEER := benchmarks/peers/node

.PHONY: run test test-slow setup clean bench bench-full

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "giftcast needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

# Development run: dev tokens and the sandbox checkout on, embedded Valkey under ./var unless
# REDIS_URL is set.
run: $(STAMP)
	GIFTCAST_DEV_TOKENS=$${GIFTCAST_DEV_TOKENS:-1} GIFTCAST_SANDBOX_PAYMENTS=$${GIFTCAST_SANDBOX_PAYMENTS:-1} \
		$(PY) -m server serve

test: $(STAMP)
	$(PY) -m ruff check .
	@test -x /usr/bin/chromium || echo "make test: /usr/bin/chromium is not installed (apt-get install chromium): the browser tests will be skipped"
	$(PY) -m pytest -m 'not slow'

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Benchmarks: the bench extras (locust, python-socketio, matplotlib, py-spy) and the Node peer's
# packages (npm ci from its package-lock.json; needs Node 20+ and npm).
$(BENCH_STAMP): pyproject.toml $(NODE_PEER)/package-lock.json $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	cd $(NODE_PEER) && npm ci --no-audit --no-fund --silent
	@touch $@

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks all --quick

bench-full: $(BENCH_STAMP)
	$(PY) -m benchmarks all --out benchmarks/results/full

clean:
	rm -rf $(VENV) var .pytest_cache $(NODE_PEER)/node_modules
