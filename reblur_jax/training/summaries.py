"""What a run reports: clu metric writers, image summaries, and per-step metrics on the host.

Step metrics stay on the device until read (reading every step would stall the accelerator), and
reading them checks that every step's loss was finite, so a NaN is caught with its exact step
before any checkpoint of a later step is written.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:
  from clu import metric_writers

# The order of the columns of an image summary.
IMAGE_COLUMNS = ("blurry", "deblurred", "reblurred", "sharp")


def create_writer(workdir: str | os.PathLike) -> metric_writers.MetricWriter:
  """TensorBoard files under `workdir` plus console logging; only logging on processes > 0."""
  # Imported here: clu's writers import TensorFlow (seconds), which only a run's summaries need.
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  return metric_writers.create_default_writer(
      os.fspath(workdir), just_logging=jax.process_index() > 0, asynchronous=True)


def image_grid(images: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
  """Side-by-side panels of `[N, H, W, 3]` images, in `IMAGE_COLUMNS` order where present.

  Returns `(name, grid)`: a name listing the columns ("blurry|deblurred|reblurred|sharp") and
  `[N, H, k * W, 3]` in [0, 1] (k panels).
  """
  names = [name for name in IMAGE_COLUMNS if name in images]
  grid = np.concatenate([np.clip(images[name], 0.0, 1.0) for name in names], axis=2)
  return "|".join(names), grid


class StepMetrics:
  """Buffers each step's metric dict (device arrays) until the host needs them."""

  def __init__(self):
    self._device: list[tuple[int, dict]] = []
    self._host: list[dict[str, np.ndarray]] = []

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    """Records the metrics of the step that produced state `step` (1 = after the first update)."""
    self._device.append((step, metrics))

  def fetch(self) -> tuple[int, float] | None:
    """Moves the buffered metrics to the host; returns `(step, loss)` of the first non-finite loss.

    Steps after a non-finite one are dropped: their state descends from a broken one.
    """
    for step, metrics in jax.device_get(self._device):
      if not np.isfinite(metrics["loss"]):
        self._device = []
        return step, float(metrics["loss"])
      self._host.append(metrics)
    self._device = []
    return None

  def mean(self) -> dict[str, float]:
    """Means of the fetched metrics since the last call, then clears them."""
    summary = {name: float(np.mean([m[name] for m in self._host])) for name in self._host[0]}
    self._host = []
    return summary
