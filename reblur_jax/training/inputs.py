"""What a run reads: the mixed S/U training stream and the held-out evaluation batches.

Both come from `reblur_jax.data.pipeline` as host-local NumPy batches (each process its own share);
`sharding.global_batch` turns them into global arrays. The embedded synthetic set is prepared on
first use, so a fresh machine trains without any download; the real sets are prepared by hand
(`python -m reblur_jax.data.prepare`, docs/data.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from reblur_jax.data import pipeline
from reblur_jax.data import prepare
from reblur_jax.training import state

PyTree = Any
SYNTHETIC = "synthetic_blur"
REAL_DATA_HINT = (
    "To train on real video instead, prepare GoPro / DVD (docs/data.md), e.g. `python -m "
    "reblur_jax.data.prepare gopro --config=blur_t7 --manual_dir=~/downloads` or `python -m "
    "reblur_jax.data.prepare dvd --config=default_t7 --manual_dir=~/downloads/"
    "DeepVideoDeblurring_Dataset`, then run the config's :gopro or :dvd variant (e.g. "
    "--config=configs/dvd_reblur.py:dvd; add --config.data_dir if not TFDS's default).")


@dataclasses.dataclass(frozen=True)
class Inputs:
  """A run's data.

  Attributes:
    config: the run's config (datasets, batch sizes, crop, seed).
    clip_length: frames per clip the steps need.
    labeled_batch_size, unlabeled_batch_size: global clips per step of each group.
    steps_per_epoch: steps per pass over U (over S when there is no U).
  """
  config: ml_collections.ConfigDict
  clip_length: int
  labeled_batch_size: int
  unlabeled_batch_size: int
  steps_per_epoch: int

  def train_iterator(self) -> grain.DatasetIterator:
    """The endless, checkpointable stream of this process's training batches."""
    config = self.config
    return pipeline.create_train_iterator(
        labeled=config.labeled_dataset, unlabeled=config.unlabeled_dataset,
        labeled_batch_size=self.labeled_batch_size,
        unlabeled_batch_size=self.unlabeled_batch_size, crop_size=config.crop_size,
        clip_length=self.clip_length, cut_probability=config.cut_probability,
        unlabeled_flows=state.flow_source(config), seed=config.seed,
        data_dir=_data_dir(config),
        labeled_split=config.labeled_split, unlabeled_split=config.unlabeled_split)

  def eval_batches(self) -> Iterator[PyTree]:
    """This process's share of the first `num_eval_batches` held-out batches, whole frames.

    Clips are read in order (no augmentation); a final partial batch is left out so that every
    device gets the same number of clips.
    """
    config = self.config
    source = pipeline.data_source(config.eval_dataset, config.eval_split, _data_dir(config))
    count = len(source) // config.eval_batch_size
    if config.num_eval_batches > 0:
      count = min(count, config.num_eval_batches)
    local = config.eval_batch_size // jax.process_count()
    for index in range(count):
      start = index * config.eval_batch_size + jax.process_index() * local
      clips = [pipeline.augment_clip(source[i], np.random.default_rng(i),
                                     clip_length=self.clip_length, flips=False)
               for i in range(start, start + local)]
      yield {"labeled": jax.tree.map(lambda *x: np.stack(x), *clips)}


def create(config: ml_collections.ConfigDict, clip_length: int,
           batch_sizes: dict[str, int]) -> Inputs:
  """The run's inputs; prepares the synthetic set if a config names it and it is missing."""
  names = {config.eval_dataset}
  if batch_sizes["labeled"]:
    names.add(config.labeled_dataset)
  if batch_sizes["unlabeled"]:
    names.add(config.unlabeled_dataset)
  for name in sorted(names):
    prepare_if_synthetic(name, _data_dir(config))
  if all(name.startswith(SYNTHETIC) for name in names):
    logging.info("Training on the embedded synthetic set (%s). %s", ", ".join(sorted(names)),
                 REAL_DATA_HINT)
  primary = "unlabeled" if batch_sizes["unlabeled"] else "labeled"
  num_clips = len(pipeline.data_source(config[f"{primary}_dataset"], config[f"{primary}_split"],
                                       _data_dir(config)))
  return Inputs(config=config, clip_length=clip_length,
                labeled_batch_size=batch_sizes["labeled"],
                unlabeled_batch_size=batch_sizes["unlabeled"],
                steps_per_epoch=math.ceil(num_clips / batch_sizes[primary]))


def prepare_if_synthetic(name: str, data_dir: str | None) -> None:
  """Generates `synthetic_blur/<config>` locally the first time a run needs it."""
  builder_name, _, builder_config = name.partition("/")
  if builder_name != SYNTHETIC:
    return
  if jax.process_index() == 0:
    prepare.prepare(SYNTHETIC, config=builder_config or None, data_dir=data_dir)
  # Other hosts wait until process 0 has written it (a shared filesystem is assumed).
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"prepared {name}")


def _data_dir(config: ml_collections.ConfigDict) -> str | None:
  return config.data_dir or None
