"""Training: the paper's supervised, self-supervised (reblur) and flow training runs.

`train_and_evaluate(config, workdir)` runs a config from `configs/`; `train.loop` is the loop of
optimiser steps that training and test-time adaptation share.
"""

from reblur_jax.training.train import train_and_evaluate

__all__ = ["train_and_evaluate"]
