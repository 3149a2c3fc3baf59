# Commands of a fresh machine: `make demo` (main job) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Tests run on CPU with quiet TensorFlow logs; xdist spreads them over the cores.
TEST_ENV := JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3
PYTEST_ARGS ?= -n 2

.PHONY: setup test demo reproduce bench figures clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS) tests

# The main job at laptop scale (configs' `:cpu` variants): FlowNetS on the synthetic set's
# ground-truth flow, a supervised DVD baseline, its self-supervised reblur fine-tuning, and the
# before/after evaluation (runs/demo/dvd_reblur/eval/report.md). Rerunning resumes.
DEMO := runs/demo
demo: setup
	$(BIN)/python train.py --config=configs/flownets_pretrain.py:cpu --workdir=$(DEMO)/flownets
	$(BIN)/python train.py --config=configs/dvd_supervised.py:cpu --workdir=$(DEMO)/dvd_supervised
	$(BIN)/python train.py --config=configs/dvd_reblur.py:cpu --workdir=$(DEMO)/dvd_reblur \
	    --config.init_checkpoint=$(DEMO)/dvd_supervised/variables/deblur \
	    --config.flow_init_checkpoint=$(DEMO)/flownets/variables/flow
	$(BIN)/python evaluate.py --workdir=$(DEMO)/dvd_reblur

# The paper's claims at CPU scale (about 45 minutes on 2 cores); regenerates docs/results.md.
reproduce: setup
	$(BIN)/python -m experiments.reproduce --workdir=runs/reproduce --output=docs/results.md

bench: setup
	for b in benchmarks/*.py; do $(TEST_ENV) $(BIN)/python $$b || exit 1; done

figures: setup
	for f in docs/scripts/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
