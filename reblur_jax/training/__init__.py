"""Training: the paper's supervised, self-supervised (reblur) and flow training runs.

`train_and_evaluate(config, workdir)` runs a config from `configs/`; `restore_checkpoint(workdir)`
opens a run's checkpoint as NumPy arrays on any machine.
"""

from reblur_jax.training.checkpointing import restore_checkpoint
from reblur_jax.training.train import train_and_evaluate

__all__ = ["restore_checkpoint", "train_and_evaluate"]
