"""The optimiser: Adam with the paper's step decay (lr 1e-4, x0.5 at epochs 30, 50 and 100)."""

from __future__ import annotations

from collections.abc import Sequence

import optax


def learning_rate_schedule(base_rate: float, *, decay_epochs: Sequence[float], decay_factor: float,
                           steps_per_epoch: int) -> optax.Schedule:
  """Piecewise-constant learning rate: `base_rate`, scaled by `decay_factor` at each epoch boundary.

  Args:
    base_rate: learning rate of the first epochs.
    decay_epochs: epochs (may be fractional) from which the next factor applies.
    decay_factor: multiplier applied at each boundary (0.5 in the paper).
    steps_per_epoch: optimiser steps in one epoch, i.e. ceil(examples / global batch size).

  Returns:
    An optax schedule, step -> learning rate.
  """
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}.")
  if not 0 < decay_factor <= 1:
    raise ValueError(f"lr_decay_factor must be in (0, 1], got {decay_factor}.")
  boundaries = {}
  for epoch in decay_epochs:
    step = round(epoch * steps_per_epoch)
    # Two epochs that round to the same step compound, as consecutive boundaries would.
    boundaries[step] = boundaries.get(step, 1.0) * decay_factor
  return optax.piecewise_constant_schedule(base_rate, boundaries)


def create_optimizer(schedule: optax.Schedule) -> optax.GradientTransformation:
  """Adam (optax defaults: b1 0.9, b2 0.999, eps 1e-8) driven by `schedule`."""
  return optax.adam(schedule)
