# Commands of a fresh machine: `make demo` (main job) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Tests run on CPU with quiet TensorFlow logs; xdist spreads them over the cores.
TEST_ENV := JAX_PLATFORMS=cpu TF_CPP_MIN_LOG_LEVEL=3
PYTEST_ARGS ?= -n 2

.PHONY: setup test demo pretrained reproduce bench figures clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

test: setup
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS) tests

# The main job at laptop scale (configs' `:cpu` variants): DVD-Reblur fine-tuned from the thin DVD
# shipped in pretrained/ (`make pretrained` made it; the reblur loss's flows are TV-L1 on the blurry
# frames, so no FlowNetS is needed; the labeled clips come from `study_mixed`, which it last trained
# on, and both synthetic sets are built on first use), the before/after evaluation
# (runs/demo/dvd_reblur/eval/report.md and grid_*.png) and one whole test video deblurred by the
# deblur command (runs/demo/video/blurry.mp4 -> blurry_deblurred.mp4). `make demo FROM_SCRATCH=1`
# first trains the DVD baseline itself (a shorter run than pretrained/'s). Rerunning resumes.
DEMO := runs/demo
ifdef FROM_SCRATCH
DEMO_DVD := $(DEMO)/dvd_supervised/variables/deblur
else
DEMO_DVD := pretrained/dvd
endif
demo: setup
ifdef FROM_SCRATCH
	$(BIN)/python train.py --config=configs/dvd_supervised.py:cpu --workdir=$(DEMO)/dvd_supervised
endif
	$(BIN)/python train.py --config=configs/dvd_reblur.py:cpu --workdir=$(DEMO)/dvd_reblur \
	    --config.init_checkpoint=$(DEMO_DVD)
	$(BIN)/python evaluate.py --workdir=$(DEMO)/dvd_reblur
	$(BIN)/python -m experiments.render_video --output=$(DEMO)/video
	$(BIN)/python -m reblur_jax.deblur --checkpoint=$(DEMO)/dvd_reblur \
	    --input=$(DEMO)/video/blurry.mp4 --output=$(DEMO)/video --overwrite

# The thin networks committed in pretrained/ (FlowNetS, DVD and DeblurGAN on the embedded
# synthetic set): FlowNetS 1500 steps, DVD 10000 steps on `study` then 3000 on `study_mixed`
# with scene cuts, DeblurGAN 3000 steps; about 1.5 hours on 2 cores when run alone (pretrained/manifest.json
# records each run's wall time, taken beside other jobs). Retraining replaces the files.
pretrained: setup
	$(BIN)/python -m experiments.pretrained --workdir=runs/pretrained --output=pretrained

# The paper's claims at CPU scale from the networks in pretrained/ (about 47 minutes on 2 cores);
# regenerates docs/results.md.
reproduce: setup
	$(BIN)/python -m experiments.reproduce --workdir=runs/reproduce --output=docs/results.md

# gpu.py's full sizes are for an accelerator: on CPU it runs at its --quick size.
bench: setup
	for b in benchmarks/*.py; do $(TEST_ENV) $(BIN)/python $$b \
	  $$([ $$b = benchmarks/gpu.py ] && echo --quick) || exit 1; done

figures: setup
	for f in docs/scripts/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
