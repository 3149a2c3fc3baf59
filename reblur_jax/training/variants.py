"""A config turned into a shorter, smaller run: the one place the `:cpu` configs, the study of
`experiments/reproduce.py` and test-time adaptation shrink a run. Imports no JAX."""

from __future__ import annotations

import ml_collections


def short_run(config: ml_collections.ConfigDict, *, steps: int, width: float | None = None,
              crop_size: int | None = None, batch_size: int | None = None,
              log_every: int | None = None, eval_every: int | None = None,
              checkpoint_every: int | None = None) -> ml_collections.ConfigDict:
  """`config`, changed in place, as a run of `steps` optimiser steps at a constant rate.

  The paper's rate decays at epoch boundaries; a run of a few epochs (or a video's handful of
  clips) would decay it within minutes, so a short run keeps it constant. The other arguments,
  where given, set the networks' `width` (deblur and flow), the crop side, the global batch and
  the cadence of logs, evaluations and checkpoints in steps.
  """
  config.num_train_steps = steps
  config.lr_decay_epochs = ()
  if width is not None:
    config.model_kwargs.width = width
    config.flow_model_kwargs.width = width
  for field, value in (("crop_size", crop_size), ("batch_size", batch_size),
                       ("log_every_steps", log_every), ("eval_every_steps", eval_every),
                       ("checkpoint_every_steps", checkpoint_every)):
    if value is not None:
      config[field] = value
  return config
