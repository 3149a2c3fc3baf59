# Commands of a fresh machine: `make demo` (main job) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Tests run on CPU with quiet TensorFlow logs; xdist spreads them over the cores.
TEST_ENV := JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3
PYTEST_ARGS ?= -n 2

.PHONY: setup test demo bench figures clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS) tests

bench: setup
	for b in benchmarks/*.py; do $(TEST_ENV) $(BIN)/python $$b || exit 1; done

figures: setup
	for f in docs/scripts/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
