# Two commands do everything on a fresh machine with Python 3.11+ and make:
#   make run    set up the virtualenv, start giftcast on the embedded Valkey
#   make test   set up the virtualenv, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-slow setup clean

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

clean:
	rm -rf $(VENV) var .pytest_cache
