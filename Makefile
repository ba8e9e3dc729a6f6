# Bastion: `make run` serves the API on SQLite, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test bench lint clean chromium redis-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml packages/bastion-resource/pyproject.toml
	$(BIN)/pip install -q -e '.[test]' -e packages/bastion-resource
	touch $@

run: $(VENV)/.installed-run
	$(BIN)/bastion serve --host 127.0.0.1 --port 8000

# tests/test_browser.py drives Debian's chromium: install it when missing and we are root
# (otherwise that test skips and says why).
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# tests/test_faults.py stops and freezes a redis-server of its own: the same, for Debian's.
redis-server:
	@command -v redis-server >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)

test: $(VENV)/.installed-test chromium redis-server
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/pip install -q ruff mypy
	$(BIN)/ruff check src tests bench packages examples
	$(BIN)/mypy src
	$(BIN)/mypy packages/bastion-resource/src packages/bastion-resource/tests

clean:
	rm -rf $(VENV) .pytest_cache bastion.db bastion.db-*

BENCH_VENV := bench/.work/venv

$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r bench/requirements.txt
	touch $@

# Side-by-side benchmark against the reference peers (wrk on loopback); about 14 minutes.
bench: $(VENV)/.installed-run $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py
