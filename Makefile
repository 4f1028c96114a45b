# The two commands: `make run` and `make test`. Everything else is for operators and developers.
# Both need only Python 3.11+; the virtual environment is built on first use and rebuilt
# when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.e2e-installed
#: The browser the e2e tests drive: Debian's package, never one Playwright downloads.
CHROMIUM ?= /usr/bin/chromium
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: run test e2e chromium venv lint chaos fuzz bench bench-latency load hosts clean-state

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
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadfile tests --ignore=tests/fuzz --ignore=tests/e2e --ignore=tests/hosts $(PYTEST_ARGS)

# Browser tests (tests/e2e): /docs and /redoc offline, the local 3-D Secure page. Installs
# what they need when missing: Debian's chromium (apt, as root or through sudo) and the
# e2e extra (Playwright for Python, which drives that chromium; no browser download).
e2e: venv chromium $(E2E_STAMP)
	ORDERFLOW_E2E_REQUIRED=1 ORDERFLOW_E2E_CHROMIUM=$(CHROMIUM) $(PYTEST) -q -n 0 tests/e2e $(PYTEST_ARGS)

$(E2E_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,e2e]'
	@touch $@

chromium:
	@test -x $(CHROMIUM) || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		echo "installing Debian's chromium (apt-get install chromium)"; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}
	@test -x $(CHROMIUM) || { echo "no chromium at $(CHROMIUM); set CHROMIUM=/path/to/chromium"; exit 1; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy orderflow api tasks workers celeryconfig.py
	$(BIN)/lint-imports

chaos: venv
	ORDERFLOW_CHAOS_ORDERS=$${ORDERFLOW_CHAOS_ORDERS:-300} $(PYTEST) -v -n $(TEST_WORKERS) tests/chaos

fuzz: venv
	$(PYTEST) -v tests/fuzz

# The system split over simulated hosts (tests/hosts): network namespaces made by the test,
# so it needs root (it skips, saying why, where it cannot make them). Prints the scaling table.
hosts: venv
	$(PYTEST) -v -s -n 0 tests/hosts $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m bench.run_all

# The pipeline with providers that take their time (Stripe 300 ms, SendGrid 150 ms stand-ins),
# next to instant ones and to chains sleeping the same; about three minutes.
bench-latency: venv
	$(BIN)/python -m bench.pipeline --provider-latency realistic
	$(BIN)/python -m bench.plot

load: venv
	$(BIN)/python -m bench.load

clean-state:
	rm -rf .orderflow
