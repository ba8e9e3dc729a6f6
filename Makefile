# Bastion: `make run` serves the API on SQLite, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

# Every install takes its exact versions from constraints.txt (`make lock` refreshes it).
PIN    := -c constraints.txt

.PHONY: run test bench lint lock clean chromium redis-server

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(PIN) --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q $(PIN) -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml packages/bastion-resource/pyproject.toml constraints.txt
	$(BIN)/pip install -q $(PIN) -e '.[test]' -e packages/bastion-resource
	touch $@

# Resolve the run, test and lint dependencies afresh (the newest pyproject.toml allows) and pin
# them all in constraints.txt; the next `make run` or `make test` installs exactly those.
# Run it after changing a dependency in pyproject.toml, and commit constraints.txt.
lock: $(BIN)/python
	$(BIN)/pip install -q --dry-run --ignore-installed --report $(VENV)/lock-report.json \
		-e '.[test]' -e packages/bastion-resource ruff mypy pip
	$(BIN)/python scripts/lock.py $(VENV)/lock-report.json constraints.txt

PORT ?= 8000
run: $(VENV)/.installed-run
	@echo "Bastion: API docs at http://127.0.0.1:$(PORT)/docs"
	@echo "No account exists yet; create the first admin with:"
	@echo "  $(BIN)/bastion users create admin --email admin@example.com --role admin"
	$(BIN)/bastion serve --host 127.0.0.1 --port $(PORT)

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
	$(BIN)/pip install -q $(PIN) ruff mypy
	$(BIN)/ruff check src tests bench packages examples scripts
	$(BIN)/mypy src scripts
	$(BIN)/mypy packages/bastion-resource/src packages/bastion-resource/tests

clean:
	rm -rf $(VENV) .pytest_cache bastion.db bastion.db-*

BENCH_VENV := bench/.work/venv

$(BENCH_VENV)/.installed: bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --no-deps -r bench/requirements.txt
	touch $@

# Side-by-side benchmark against the reference peers in bench/peers (wrk on loopback); about
# 19 minutes. `make bench BENCH_ARGS=--quick` is a one-minute smoke run of every server.
# The kit's row runs bench/kit_service.py with Bastion's interpreter: the kit goes in .venv too.
$(VENV)/.installed-kit: $(BIN)/python packages/bastion-resource/pyproject.toml constraints.txt
	$(BIN)/pip install -q $(PIN) -e packages/bastion-resource
	touch $@

BENCH_ARGS ?=
bench: $(VENV)/.installed-run $(VENV)/.installed-kit $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)
