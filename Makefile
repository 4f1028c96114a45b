# The two commands: `make run` and `make test`. Everything else is for operators and developers.
# Both need only Python 3.11+; the virtual environment is built on first use and rebuilt
# when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run test venv lint chaos fuzz bench load clean-state

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "orderflow needs Python 3.11 or newer; set PYTHON=python3.11 (or newer)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: venv
	$(BIN)/python -m workers.launcher

test: venv
	$(BIN)/lint-imports
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadfile tests --ignore=tests/fuzz $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy orderflow api tasks workers celeryconfig.py
	$(BIN)/lint-imports

chaos: venv
	ORDERFLOW_CHAOS_ORDERS=$${ORDERFLOW_CHAOS_ORDERS:-300} $(PYTEST) -v -n $(TEST_WORKERS) tests/chaos

fuzz: venv
	$(PYTEST) -v tests/fuzz

bench: venv
	$(BIN)/python -m bench.run_all

load: venv
	$(BIN)/python -m bench.load

clean-state:
	rm -rf .orderflow
