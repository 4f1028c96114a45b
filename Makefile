# The two commands: `make run` and `make test`. Everything else is for operators and developers.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run test venv lint chaos fuzz bench clean-state

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: venv
	$(BIN)/python -m workers.launcher

test: venv
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadfile tests --ignore=tests/fuzz

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy orderflow api tasks workers celeryconfig.py

chaos: venv
	ORDERFLOW_CHAOS_ORDERS=$${ORDERFLOW_CHAOS_ORDERS:-300} $(PYTEST) -v -n $(TEST_WORKERS) tests/chaos

fuzz: venv
	$(PYTEST) -v tests/fuzz

bench: venv
	$(BIN)/python -m bench.run_all

clean-state:
	rm -rf .orderflow
