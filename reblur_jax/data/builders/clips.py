"""Datasets of clips: every frame of a sequence with its neighbours, as one TFDS example.

An example is the clip of `T = clip_length` consecutive frames centred on one frame of a sequence
(docs/conventions.md, "Datasets"): `blurry uint8 [T, H, W, 3]`, for labeled sets `sharp` too, for
synthetic sets `flow_next` / `flow_prev float32 [T, H, W, 2]` and `tau`, plus `sequence` (name) and
`frame` (index of the middle frame in its sequence). Every frame is the middle of one clip; at the
ends of a sequence the clip is padded by repeating the first / last frame (replicate padding), so
the first clip of a sequence is frames `[0, 0, 1]` for `T = 3` and `[0, 0, 0, 0, 1, 2, 3]` for
`T = 7`. A frame skipped as unreadable cuts its sequence in two, each padded the same way, so a
clip never spans a gap.

Each builder offers its configs at clip lengths 3 (the config's own name; what the reblur loss
needs: frames t-1, t, t+1) and 7 (name suffixed `_t7`: DVD's 5-frame input around each of t-1, t,
t+1). The input pipeline can cut shorter centred clips from longer ones.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from reblur_jax.data.builders import frames as frames_lib

CLIP_LENGTHS = (3, 7)


@dataclasses.dataclass(eq=False)
class ClipConfig(tfds.core.BuilderConfig):
  """A builder config with the clip length `T` (odd: the clip's middle frame is the target)."""

  clip_length: int = 3


def with_clip_lengths(configs: Sequence[ClipConfig]) -> list[ClipConfig]:
  """Every config at each of `CLIP_LENGTHS`: named as given for 3 frames, `<name>_t7` for 7."""
  return [
      dataclasses.replace(
          config, name=config.name if length == 3 else f"{config.name}_t{length}",
          clip_length=length, description=f"{config.description} Clips of {length} frames.")
      for config in configs for length in CLIP_LENGTHS
  ]


def clip_features(clip_length: int, *, labeled: bool, flows: bool) -> tfds.features.FeaturesDict:
  """The example spec. Frames are `Sequence(Image)`, which decodes without TensorFlow."""

  def frames():
    return tfds.features.Sequence(tfds.features.Image(shape=(None, None, 3)), length=clip_length)

  features = {
      "blurry": frames(),
      "sequence": tfds.features.Text(),
      "frame": tfds.features.Scalar(np.int32),
  }
  if labeled:
    features["sharp"] = frames()
  if flows:
    for key in ("flow_next", "flow_prev"):
      features[key] = tfds.features.Tensor(shape=(clip_length, None, None, 2), dtype=np.float32,
                                           encoding=tfds.features.Encoding.ZLIB)
    features["tau"] = tfds.features.Scalar(np.float32)
  return tfds.features.FeaturesDict(features)


def windows(frames: Iterable[frames_lib.Frame | None], clip_length: int
            ) -> Iterator[list[frames_lib.Frame]]:
  """The clip of every readable frame, in order, holding at most `clip_length` frames at a time.

  Args:
    frames: a sequence's frames; `None` marks a skipped (unreadable) frame.
    clip_length: T, odd.

  Yields:
    Lists of T frames, centred on each non-`None` frame, replicate-padded at the ends of each
    run of consecutive readable frames.
  """
  if clip_length < 1 or clip_length % 2 == 0:
    raise ValueError(f"clip_length must be odd and positive (the middle frame is the target), "
                     f"got {clip_length!r}.")
  half = clip_length // 2
  for readable, run in itertools.groupby(frames, key=lambda frame: frame is not None):
    if readable:
      window = collections.deque(maxlen=clip_length)
      for frame in _replicate_ends(run, half):
        window.append(frame)
        if len(window) == clip_length:
          yield list(window)


def _replicate_ends(run: Iterable, count: int) -> Iterator:
  """`run` with its first and last items each repeated `count` more times."""
  item = None
  for i, item in enumerate(run):
    if i == 0:
      yield from [item] * count
    yield item
  if item is not None:
    yield from [item] * count


class SequenceSource(NamedTuple):
  """One sequence to cut into clips.

  Attributes:
    name: unique within the dataset; becomes each clip's `sequence`.
    frames: its frames in order (read lazily); `None` marks a skipped frame.
    features: extra features shared by all its clips (e.g. the synthetic `tau`).
    middle_frames: if given, only the clips centred on these frame indices (an evaluation
      protocol); the others still serve as neighbours.
  """

  name: str
  frames: Iterable[frames_lib.Frame | None]
  features: Mapping[str, Any] = {}
  middle_frames: Container[int] | None = None


def clip_example(window: Sequence[frames_lib.Frame], sequence: str) -> tuple[str, dict]:
  """The TFDS key and example of a clip: images as lists of bytes, arrays stacked on axis 0."""
  middle = window[len(window) // 2]
  example = {
      key: (np.stack([f.data[key] for f in window]) if isinstance(value, np.ndarray)
            else [f.data[key] for f in window])
      for key, value in middle.data.items()
  }
  example.update(sequence=sequence, frame=middle.index)
  return f"{sequence}/{middle.index:06d}", example


class ClipBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the clip datasets: subclasses list their splits' sequences in `_split_generators`.

  Class attributes for subclasses: `LABELED` (has `sharp`), `FLOWS` (has flows and `tau`),
  `DESCRIPTION`, `HOMEPAGE`, `CITATION`.

  Args (besides TFDS's `data_dir`, `config`, `version`):
    on_corrupt: "fail" (default) raises on an unreadable input image naming its path; "skip"
      leaves it out with a warning naming the path.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  LABELED = True
  FLOWS = False
  DESCRIPTION = ""
  HOMEPAGE = ""
  CITATION = ""

  def __init__(self, *, on_corrupt: str = "fail", **kwargs):
    frames_lib.check_on_corrupt(on_corrupt)
    self.on_corrupt = on_corrupt
    kwargs.setdefault("file_format", "array_record")  # Random access without TensorFlow.
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=clip_features(self.builder_config.clip_length, labeled=self.LABELED,
                               flows=self.FLOWS),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
        # Keep clips in sequence order, for evaluation; the training pipeline shuffles.
        disable_shuffling=True,
    )

  def _generate_examples(self, split: str, sequences: Iterable[SequenceSource]):
    """Yields the clips of `sequences` (read lazily, one sequence at a time).

    Raises:
      ValueError: the split has no clips.
    """
    count = 0
    for sequence in sequences:
      for window in windows(sequence.frames, self.builder_config.clip_length):
        key, example = clip_example(window, sequence.name)
        if sequence.middle_frames is None or example["frame"] in sequence.middle_frames:
          example.update(sequence.features)
          count += 1
          yield key, example
    if not count:
      raise ValueError(f"Split {split!r} of {self.name}/{self.builder_config.name} has no clips: "
                       "every sequence was empty or skipped. Check the input files.")

  # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and
  # prepared to ...", wrong for sets rendered or read from local files. The start is logged as
  # what it is, naming the directory; `prepare`'s last line says when the set is ready.
  def _log_download_bytes(self) -> None:
    logging.info("Generating %s/%s in %s (locally; nothing is downloaded).", self.name,
                 self.builder_config.name, self.data_dir)

  def _log_download_done(self) -> None:
    pass

  def manual_dir(self, dl_manager: tfds.download.DownloadManager) -> str:
    """The manual directory, or a `FileNotFoundError` naming it and the expected layout."""
    try:
      return os.fspath(dl_manager.manual_dir)
    except AssertionError as e:  # TFDS's message names the path and gives the instructions.
      raise FileNotFoundError(f"{e}(`python -m reblur_jax.data.prepare` takes it as --manual_dir.)"
                              ) from None
