"""The training input pipeline: batches mixing labeled (S) and unlabeled (U) clips, with grain.

Every step gets exactly `labeled_batch_size` labeled and `unlabeled_batch_size` unlabeled clips
(global counts; each host gets its `1 / process_count` share), as host-local NumPy:

    {"labeled":   {"blurry": [Bs, T, h, w, 3], "sharp": [Bs, T, h, w, 3], ...},
     "unlabeled": {"blurry": [Bu, T, h, w, 3]}}

float32 images in [0, 1]; a group is absent when its batch size is 0. Labeled clips keep every
array feature of their dataset (synthetic sets add `flow_next`, `flow_prev` `[Bs, T, h, w, 2]`
and `tau` `[Bs]`); unlabeled clips keep only `blurry`, plus their middle frame's estimated flows
`estimated_flow_prev`, `estimated_flow_next` `[Bu, h, w, 2]` with `unlabeled_flows="tvl1"`.
`sequence` and `frame` are dropped (strings do not go to devices; evaluation reads `data_source`
directly).

Each group is its own grain `MapDataset`: this host's shard of the data source, shuffled anew each
epoch, repeated forever, augmented (a random crop and random flips, identical across the frames
and features of a clip), batched; the two are zipped step by step. Batch `i` is a pure function
of the arguments and `i`, so an iterator's state is a step counter: `get_state()` /
`set_state()` (or grain's Orbax handler, `grain.checkpoint.CheckpointSave(iterator)`) save and
restore it with the training checkpoint, and a restored run sees exactly the batches an
uninterrupted one would have.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
import tensorflow_datasets as tfds

from reblur_jax.data import estimated_flows

FLOW_KEYS = ("flow_next", "flow_prev", *estimated_flows.KEYS)
METADATA_KEYS = ("sequence", "frame")

Source = str | Sequence[Mapping[str, Any]]


def create_train_iterator(**kwargs) -> grain.DatasetIterator:
  """`iter(create_train_dataset(**kwargs))`: the iterator training consumes and checkpoints."""
  return iter(create_train_dataset(**kwargs))


def create_train_dataset(
    *,
    labeled: Source | None = None,
    unlabeled: Source | None = None,
    labeled_batch_size: int = 0,
    unlabeled_batch_size: int = 0,
    crop_size: int | tuple[int, int] | None = None,
    clip_length: int | None = None,
    flips: bool = True,
    cut_probability: float = 0.0,
    unlabeled_flows: str = "flownets",
    seed: int = 0,
    data_dir: str | None = None,
    labeled_split: str = "train",
    unlabeled_split: str = "train",
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int = 2,
    prefetch_batches: int = 4,
    worker_count: int = 0,
) -> grain.IterDataset:
  """The infinite, deterministic stream of training batches (module docstring).

  Args:
    labeled: the S clips: a prepared TFDS dataset name with config, e.g. "synthetic_blur/tiny" or
      "gopro/blur_t7" (`python -m reblur_jax.data.prepare`), or a random-access sequence of
      examples in the same format (lists of `uint8 [H, W, 3]` frames or `[T, H, W, 3]` arrays).
    unlabeled: the U clips, likewise; only their `blurry` frames are used, so a labeled set
      serves too.
    labeled_batch_size, unlabeled_batch_size: clips per step over all hosts; each a multiple of
      `process_count`; 0 leaves the group out.
    crop_size: `(h, w)` (or one int for both) of a random crop, in pixels; None keeps whole
      frames (then all clips of a group must have one size).
    clip_length: keep the middle `clip_length` frames of each stored clip (odd, at most the
      stored `T`); None keeps all.
    flips: random horizontal and vertical flips (each with probability 1/2); flows are mirrored
      and their component along the flipped axis negated.
    cut_probability: the chance that a labeled clip has a scene cut (`augment_clip`); 0 for
      flow training, whose flows would not describe the cut.
    unlabeled_flows: "flownets" (U clips carry frames only; the reblur loss estimates the flows)
      or "tvl1" (each U clip also carries its middle frame's TV-L1 flows on the blurry frames,
      computed once per clip, `reblur_jax.data.estimated_flows`).
    seed: seeds shuffling and augmentation; same seed, same batches.
    data_dir: the TFDS data directory of named datasets (None: TFDS's default).
    labeled_split, unlabeled_split: which splits to read.
    process_index, process_count: this host and the number of hosts; None means
      `jax.process_index()` / `jax.process_count()`. Hosts read disjoint shards.
    num_threads: threads assembling batches in this process.
    prefetch_batches: batches prepared ahead (per worker when `worker_count > 0`).
    worker_count: worker processes (grain `mp_prefetch`); 0 prepares batches in-process.
      Starting them reads an absl flag: run under `absl.app`, or call
      `absl.flags.FLAGS.mark_as_parsed()` first (notebooks, tests).

  Returns:
    A grain `IterDataset`; iterating it gives the batches, its iterator has `get_state` and
    `set_state`.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, process_count={process_count}), got "
                     f"{process_index}.")
  specs = {
      "labeled": (labeled, labeled_batch_size, labeled_split),
      "unlabeled": (unlabeled, unlabeled_batch_size, unlabeled_split),
  }
  crop = _pair(crop_size)
  if not 0.0 <= cut_probability <= 1.0:
    raise ValueError(f"cut_probability must be in [0, 1], got {cut_probability!r}.")
  if unlabeled_flows not in estimated_flows.SOURCES:
    raise ValueError(f"unlabeled_flows must be one of {estimated_flows.SOURCES}, got "
                     f"{unlabeled_flows!r}.")
  groups = {}
  for number, (group, (source, batch_size, split)) in enumerate(specs.items()):
    local_batch = _local_batch_size(group, source, batch_size, process_count)
    if local_batch:
      examples = data_source(source, split, data_dir)
      keys = None
      if group == "unlabeled":
        keys = ("blurry",)
        if unlabeled_flows == "tvl1":
          examples = estimated_flows.WithMiddleFlows(examples)
          keys += estimated_flows.KEYS
      augment = functools.partial(
          augment_clip, keys=keys, crop_size=crop, clip_length=clip_length, flips=flips,
          cut_probability=cut_probability if group == "labeled" else 0.0)
      groups[group] = _batches(
          examples, augment, local_batch, group=group,
          seed=np.random.SeedSequence([seed, number, process_index]),
          process_index=process_index, process_count=process_count)
  if not groups:
    raise ValueError("Both batch sizes are 0: set labeled_batch_size and/or "
                     "unlabeled_batch_size (with the matching dataset).")
  steps = min(len(g) for g in groups.values())  # Repeated forever: the same huge length.
  dataset = grain.experimental.ZipMapDataset([g[:steps] for g in groups.values()]).map(
      functools.partial(_name_groups, names=tuple(groups)))
  dataset = dataset.to_iter_dataset(
      grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_batches))
  if not worker_count:
    return dataset
  return dataset.mp_prefetch(grain.MultiprocessingOptions(
      num_workers=worker_count, per_worker_buffer_size=prefetch_batches))


def _batches(examples: Sequence[Mapping[str, Any]], augment, batch_size: int, *, group: str,
             seed: np.random.SeedSequence, process_index: int,
             process_count: int) -> grain.MapDataset:
  """One group's endless batches: this host's shard, reshuffled each epoch, augmented."""
  shard = grain.MapDataset.source(examples)[process_index::process_count]
  if not len(shard):
    raise ValueError(f"The {group} dataset has fewer clips ({len(examples)}) than hosts "
                     f"({process_count}).")
  augment(shard[0], np.random.default_rng(0))  # Bad crop_size / clip_length: fail now, not later.
  shuffle_seed, augment_seed = (int(s) for s in seed.generate_state(2))
  return (shard.shuffle(seed=shuffle_seed)
          .repeat()
          .random_map(augment, seed=augment_seed)
          .batch(batch_size, drop_remainder=True))


def augment_clip(example: Mapping[str, Any], rng: np.random.Generator, *,
                 keys: Sequence[str] | None = None, crop_size: int | tuple[int, int] | None = None,
                 clip_length: int | None = None, flips: bool = True,
                 cut_probability: float = 0.0) -> dict[str, np.ndarray]:
  """One clip, trimmed, cropped, flipped and converted; identical across frames and features.

  With `cut_probability`, the clip has a scene cut: the frames from a random one of its
  neighbours of the middle frame outwards (all features) come from another random crop window of
  the clip. Real video cuts between shots and moves further between frames than a network can
  align; without such clips a multi-frame network learns to trust every neighbour and pastes
  what it sees there into the middle frame (docs/baselines.md). Needs `crop_size`.

  Args:
    example: a dataset example: frames as `uint8 [T, H, W, 3]` (or lists of `[H, W, 3]`), flows
      `float32 [T, H, W, 2]`, one frame's features `[H, W, C]` (cropped and flipped with the
      frames, not trimmed or cut), scalars.
    rng: the clip's random generator.
    keys: the features to keep; None keeps all but `sequence` and `frame`.
    crop_size: `(h, w)` (or one int for both) of the random crop, or None.
    clip_length: keep the middle `clip_length` frames, or None.
    flips: random horizontal / vertical flips.
    cut_probability: the chance of a scene cut, in [0, 1].

  Returns:
    The kept features: images `float32 [T', h, w, 3]` in [0, 1], flows `float32 [T', h, w, 2]`
    (pixels), one frame's features `[h, w, C]`, scalars as `float32` / `int32` arrays.
  """
  keys = [k for k in example if k not in METADATA_KEYS] if keys is None else keys
  clip = {k: np.asarray(example[k]) for k in keys}
  if clip_length is not None:
    clip = {k: _middle_frames(v, clip_length, k) if v.ndim == 4 else v for k, v in clip.items()}
  if crop_size is not None:
    cropped = _random_crop(clip, _pair(crop_size), rng)
    if cut_probability and rng.random() < cut_probability:
      cropped = _cut(cropped, _random_crop(clip, _pair(crop_size), rng), rng)
    clip = cropped
  elif cut_probability:
    raise ValueError("cut_probability needs a crop_size: the frames after a cut come from "
                     "another crop window of the clip.")
  if flips:
    for axis in (2, 1):  # Columns (horizontal flip), then rows (vertical flip).
      if rng.random() < 0.5:
        clip = {k: _flip(v, k, axis) if v.ndim >= 3 else v for k, v in clip.items()}
  return {k: _to_float(v) for k, v in clip.items()}


def _middle_frames(frames: np.ndarray, clip_length: int, key: str) -> np.ndarray:
  length = frames.shape[0]
  if clip_length % 2 == 0 or not 1 <= clip_length <= length:
    raise ValueError(f"clip_length must be odd and between 1 and the stored clip length {length} "
                     f"(feature {key!r}), got {clip_length}; prepare a `_t7` config for longer "
                     "clips.")
  start = (length - clip_length) // 2
  return frames[start:start + clip_length]


def _random_crop(clip: dict[str, np.ndarray], crop_size: tuple[int, int],
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
  """The same random `crop_size` window of every `[T, H, W, C]` or `[H, W, C]` feature."""
  height, width = next(v.shape[-3:-1] for v in clip.values() if v.ndim >= 3)
  h, w = crop_size
  if h > height or w > width:
    raise ValueError(f"crop_size {crop_size} is larger than the frames ({height}, {width}); "
                     "choose a smaller crop_size or a dataset with larger frames.")
  top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
  return {k: v[..., top:top + h, left:left + w, :] if v.ndim >= 3 else v
          for k, v in clip.items()}


def _cut(clip: dict[str, np.ndarray], other: dict[str, np.ndarray],
         rng: np.random.Generator) -> dict[str, np.ndarray]:
  """`clip` with the frames from a random neighbour of the middle outwards taken from `other`."""
  length = next(v.shape[0] for v in clip.values() if v.ndim == 4)
  middle = length // 2
  if middle == 0:
    return clip
  distance = int(rng.integers(1, middle + 1))
  frames = (slice(middle + distance, None) if rng.random() < 0.5
            else slice(0, middle - distance + 1))
  cut = {}
  for key, value in clip.items():
    if value.ndim == 4:
      value = value.copy()
      value[frames] = other[key][frames]
    cut[key] = value
  return cut


def _flip(frames: np.ndarray, key: str, axis: int) -> np.ndarray:
  """Flips `[T, H, W, C]` (or `[H, W, C]`) along `axis` (1: rows, 2: columns, of `[T, H, W, C]`).

  A flow's component along that axis changes sign: channel 0 (u) for columns, 1 (v) for rows.
  """
  flipped = np.flip(frames, axis - 4)
  if key in FLOW_KEYS:
    flipped = flipped * np.array([-1.0, 1.0] if axis == 2 else [1.0, -1.0], np.float32)
  return flipped


def _to_float(value: np.ndarray) -> np.ndarray:
  if value.dtype == np.uint8:
    return value.astype(np.float32) / np.float32(255.0)
  if np.issubdtype(value.dtype, np.floating):
    return value.astype(np.float32)
  return value.astype(np.int32)


def _pair(size: int | Sequence[int] | None) -> tuple[int, int] | None:
  if size is None:
    return None
  pair = (size, size) if isinstance(size, int) else tuple(size)
  if len(pair) != 2 or any(int(s) != s or s < 1 for s in pair):
    raise ValueError(f"crop_size must be a positive int or (height, width), got {size!r}.")
  return pair


def _local_batch_size(group: str, source, batch_size: int, process_count: int) -> int:
  """This host's share of a group's global batch; 0 if the group is unused."""
  if int(batch_size) != batch_size or batch_size < 0:
    raise ValueError(f"{group}_batch_size must be a non-negative integer, got {batch_size!r}.")
  if batch_size and source is None:
    raise ValueError(f"{group}_batch_size is {batch_size} but no {group} dataset was given; "
                     f"pass {group}='<name>/<config>' (e.g. 'synthetic_blur/tiny').")
  if batch_size % process_count:
    raise ValueError(f"{group}_batch_size {batch_size} must be a multiple of process_count "
                     f"{process_count} (each host takes an equal share).")
  return batch_size // process_count


def data_source(source: Source, split: str, data_dir: str | None = None
                ) -> Sequence[Mapping[str, Any]]:
  """The examples of `split`, random access: a prepared TFDS dataset by name, or `source` itself.

  `len()` of it counts the clips (e.g. for steps per epoch); evaluation can index it in order.

  Raises:
    FileNotFoundError: the named dataset is not prepared in `data_dir` (says how to prepare it).
    ValueError: no such split, or an empty one.
  """
  if not isinstance(source, str):
    data = source
  else:
    builder = tfds.builder(source, data_dir=data_dir)
    if not builder.is_prepared():
      name, _, config = source.partition("/")
      raise FileNotFoundError(
          f"Dataset {source} is not prepared in {builder.data_dir}. Prepare it with `python -m "
          f"reblur_jax.data.prepare {name}{' --config=' + config if config else ''} "
          f"--data_dir=...` (see docs/data.md), or pass the right data_dir.")
    if split not in builder.info.splits:
      raise ValueError(f"Dataset {source} has no split {split!r}; it has "
                       f"{sorted(builder.info.splits)}.")
    data = builder.as_data_source(split=split)
  if not len(data):
    name = source if isinstance(source, str) else "the given examples"
    raise ValueError(f"Split {split!r} of {name} is empty; nothing to train on.")
  return data


def _name_groups(batches: tuple, names: tuple[str, ...]) -> dict[str, Any]:
  return dict(zip(names, batches))
