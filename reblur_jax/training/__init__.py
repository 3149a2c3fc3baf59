"""Training: the paper's supervised, self-supervised (reblur) and flow training runs.

`train_and_evaluate(config, workdir)` runs a config from `configs/`; `train.loop` is the loop of
optimiser steps that training and test-time adaptation share; `variants.short_run` is how a
config becomes a shorter, smaller run. `train_and_evaluate` is imported on first use, so that
the configs, which use `variants`, load without JAX.
"""

import importlib

__all__ = ["train_and_evaluate"]


def __getattr__(name: str):
  if name != "train_and_evaluate":
    raise AttributeError(f"module 'reblur_jax.training' has no attribute {name!r}")
  return importlib.import_module("reblur_jax.training.train").train_and_evaluate
