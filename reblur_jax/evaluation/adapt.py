"""Test-time adaptation: fine-tuning a deblur network on the very video it is about to deblur.

The paper's single-image / group fine-tuning (Sec. 4.3, Table 4): the self-supervised reblur loss
`L_U` on clips of the video (the unlabeled set U), optionally mixed with labeled clips (`L_S`).
It is the training run of the checkpoint's own config with other data: `train.create_run` builds
the optimiser, the train state (from the given variables) and the data-parallel step (losses,
blur model, frozen BatchNorm and FlowNetS as configured), the input pipeline cuts random crops
from the video's clips, and `train.loop` runs the steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from reblur_jax import checkpoint
from reblur_jax.data import pipeline
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import train
from reblur_jax.training import variants
from reblur_jax.training import validation

PyTree = Any
LEARNING_RATE = 1e-4  # The paper's fine-tuning rate.
LABELED_FRACTION = 0.5  # Labeled share of a batch when labeled clips are mixed in, by default.


def adaptation_config(config: ml_collections.ConfigDict, *, steps: int, frame_size: tuple[int, int],
                      learning_rate: float = LEARNING_RATE, batch_size: int | None = None,
                      labeled_dataset: str | None = None, data_dir: str | None = None
                      ) -> ml_collections.ConfigDict:
  """The checkpoint's training config, turned into fine-tuning on one video (or a few clips).

  Args:
    config: the config the checkpoint was trained with.
    steps: optimiser steps.
    frame_size: `(H, W)` of the video; crops are at most this large.
    learning_rate: Adam's rate.
    batch_size: clips per step (None: the config's).
    labeled_dataset: a prepared labeled set to mix in ("name/config"), or None for the video
      alone; `config.unlabeled_fraction` of each batch is then video (0.5 if the config had none).
    data_dir: where `labeled_dataset` is prepared.
  """
  if steps < 1:
    raise ValueError(f"adapt_steps must be >= 1 to adapt, got {steps}.")
  config = ml_collections.ConfigDict(config.to_dict())
  config.task = "deblur"
  config.learning_rate = learning_rate
  # The paper's fine-tuning: BatchNorm statistics frozen, and a constant rate.
  config.train_mode = False
  variants.short_run(config, steps=steps, batch_size=batch_size or config.batch_size,
                     crop_size=min(config.crop_size, *frame_size))
  if labeled_dataset:
    config.labeled_dataset = labeled_dataset
    config.data_dir = data_dir or config.data_dir
    if not 0 < config.unlabeled_fraction < 1:
      config.unlabeled_fraction = LABELED_FRACTION
  else:
    config.unlabeled_fraction = 1.0
  return config


def clip_length(config: ml_collections.ConfigDict) -> int:
  """Frames per unlabeled clip that `adapt` needs under `config` (the training step's)."""
  return train.clip_length(config, state_lib.create_networks(config))


def adapt(config: ml_collections.ConfigDict, variables: dict[str, PyTree],
          clips: Sequence[dict[str, np.ndarray]], *, log_every: int | None = None
          ) -> tuple[PyTree, list[dict[str, float]]]:
  """Fine-tunes the deblur network on unlabeled `clips` with the run's losses.

  Args:
    config: an `adaptation_config`.
    variables: `{'deblur': ..., 'flow': ...}`, each `{'params', 'batch_stats'?}` (host arrays).
    clips: what to adapt to, a random-access source of `{'blurry': uint8 [T, H, W, 3]}` centred
      on the frames to restore, `T >= clip_length(config)`: a whole video
      (`video.Clips(frames, clip_length(config))`), or chosen clips of a data set (one image or a
      group of them, the paper's Table 4).
    log_every: steps between logged metric means (None: about ten times in all).

  Returns:
    `(deblur variables, history)`: the adapted `{'params', 'batch_stats'?}` as host arrays, and
    the logged means (`{'step', 'loss', 'loss_reblur', 'psnr_reblur', ...}`).

  Raises:
    train.NonFiniteLossError: the loss became NaN or inf.
  """
  # The datasets and init checkpoints are the caller's (the video, restored variables).
  validation.validate_config(config, jax.device_count(), check_files=False)
  steps = config.num_train_steps
  log_every = log_every or max(1, steps // 10)
  mesh = sharding.create_mesh()
  networks = state_lib.create_networks(config)
  sizes = validation.batch_sizes(config)
  run = train.create_run(config, networks, mesh,
                         steps_per_epoch=math.ceil(len(clips) / sizes["unlabeled"]),
                         variables={name: variables[name] for name in networks})
  batches = pipeline.create_train_iterator(
      labeled=config.labeled_dataset if sizes["labeled"] else None,
      unlabeled=clips, labeled_batch_size=sizes["labeled"],
      unlabeled_batch_size=sizes["unlabeled"], crop_size=config.crop_size,
      clip_length=run.clip_length, seed=config.seed, data_dir=config.data_dir or None)

  state, history = run.state, []
  try:
    for point in train.loop(run.train_step, run.state, batches, mesh, start=0, total=steps,
                            pause=lambda step: step % log_every == 0, desc="adapt"):
      state = point.state
      history.append({"step": point.step, **point.metrics.mean()})
      point.bar.set_postfix(loss_reblur=f"{history[-1]['loss_reblur']:.4g}")
      logging.info("Adaptation step %d: %s", point.step, history[-1])
  except train.NonFiniteLossError as e:
    raise train.NonFiniteLossError(
        f"The adaptation loss is {e.loss} at step {e.step}; lower --adapt_learning_rate.",
        step=e.step, loss=e.loss) from None
  adapted = checkpoint.network_variables(state.params, state.batch_stats, "deblur")
  return jax.device_get(adapted), history
