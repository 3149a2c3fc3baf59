"""Synthetic blurry video with ground truth (`reblur_jax.data.synthetic`), generated locally.

Sequence `i` of the train split is `render_sequence(seed=i, split="train", ...)`; test sequences
use seeds from `TEST_SEED_OFFSET` on and the test photos, validation sequences seeds from
`VALIDATION_SEED_OFFSET` on and their own photos, so no scene or photo is shared. Validation moves
like the test split: it is where settings are chosen, never on test. Sequence
names are `<split>_<seed>`. Flows are stored rounded to 1/256 pixel (an error of at most 0.002
pixel, far below what 8-bit frames resolve), which lets zlib compress them about 3.7x.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from reblur_jax.data.builders import clips
from reblur_jax.data.builders import frames

TEST_SEED_OFFSET = 1_000_000
VALIDATION_SEED_OFFSET = 2_000_000
_FLOW_STEP = 1 / 256  # Pixels; a power of two, so the rounded values are exact in float32.


@dataclasses.dataclass(eq=False)
class SyntheticConfig(clips.ClipConfig):
  """Size of the generated set and the camera it imitates (see `render_sequence`).

  Attributes:
    height, width: frame size in pixels.
    num_frames: frames per sequence.
    train_sequences, test_sequences, validation_sequences: sequences per split (no validation
      split when 0).
    exposure: sub-frames averaged per blurry frame (the paper's 9).
    linear_light: average in linear light (like GoPro's `blur_gamma`).
    noise_std: Gaussian noise on the blurry frames, in [0, 1] units.
    max_speed: bound on each layer's speed, pixels per frame interval (`render_sequence`).
    test_max_speed: the test and validation splits' bound (None: `max_speed`); faster than
      training makes the test videos differ from the training ones as real footage does, a gap
      to close.
    train_speed_scale: `(low, high)`: each training sequence's bound is `max_speed` times a
      factor drawn from this range (per seed), so that training also sees mild blur and none.
    train_linear_light_share: fraction of the training sequences averaged in linear light (the
      others as `linear_light` says); real cameras integrate light linearly.
  """

  height: int = 64
  width: int = 64
  num_frames: int = 8
  train_sequences: int = 6
  test_sequences: int = 2
  validation_sequences: int = 0
  exposure: int = 9
  linear_light: bool = False
  noise_std: float = 0.0
  max_speed: float = 12.0
  test_max_speed: float | None = None
  train_speed_scale: tuple[float, float] = (1.0, 1.0)
  train_linear_light_share: float = 0.0

  def speed(self, split: str) -> float:
    return self.test_max_speed if split != "train" and self.test_max_speed else self.max_speed


class SyntheticBlur(clips.ClipBuilder):
  """Clips of synthetic blurry video: blurry, sharp, ground-truth flows and `tau`."""

  BUILDER_CONFIGS = clips.with_clip_lengths([
      SyntheticConfig(
          name="tiny", height=64, width=64, num_frames=8, train_sequences=6, test_sequences=2,
          description="64x64, 6 + 2 sequences of 8 frames: tests and demos (seconds to build)."),
      SyntheticConfig(
          name="train", height=160, width=160, num_frames=24, train_sequences=48,
          test_sequences=8,
          description="160x160, 48 + 8 sequences of 24 frames: CPU-scale training (minutes)."),
      SyntheticConfig(
          name="study", height=96, width=96, num_frames=16, train_sequences=48,
          test_sequences=6, validation_sequences=6, max_speed=12.0, test_max_speed=18.0,
          description="96x96, 48 + 6 validation + 6 test sequences of 16 frames, validation and "
          "test motion up to 18 pixels per frame against 12 in training: `make demo`, `make "
          "reproduce` (minutes to build)."),
      SyntheticConfig(
          name="study_mixed", height=96, width=96, num_frames=16, train_sequences=48,
          test_sequences=6, validation_sequences=6, max_speed=12.0, test_max_speed=18.0,
          train_speed_scale=(0.0, 1.0), train_linear_light_share=0.5,
          description="`study` with broader training blur: each training sequence's speed bound "
          "is 0-12 pixels per frame (mild blur and none too), half of them averaged in linear "
          "light; validation and test are `study`'s, frame for frame."),
      SyntheticConfig(
          name="study_wide", height=96, width=96, num_frames=16, train_sequences=48,
          test_sequences=6, validation_sequences=6, max_speed=18.0, test_max_speed=18.0,
          train_speed_scale=(0.0, 1.0), train_linear_light_share=0.5,
          description="`study_mixed` with training motion up to the test split's 18 pixels per "
          "frame; validation and test are `study`'s, frame for frame."),
  ])
  FLOWS = True
  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "2.0.0": "Training scenes: more photos, dead leaves, random colours; "
                            "`study` gets a validation split and twice the training sequences."}
  DESCRIPTION = ("Real photographs (scikit-image's bundled images) moved by a random camera and "
                 "independently moving objects, rendered at a high frame rate and averaged into "
                 "blurry frames; the middle sub-frame is the sharp ground truth.")

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split, self._sequences(split, split_seeds))
            for split, split_seeds in sequence_seeds(self.builder_config).items() if split_seeds}

  def _sequences(self, split: str, seeds: range) -> Iterator[clips.SequenceSource]:
    """Renders one sequence at a time, as the builder asks for it."""
    for seed in seeds:
      video = render(self.builder_config, split, seed)
      sequence = [
          frames.Frame(i, {
              "blurry": frames.png_bytes(video["blurry"][i]),
              "sharp": frames.png_bytes(video["sharp"][i]),
              "flow_next": _round_flow(video["flow_next"][i]),
              "flow_prev": _round_flow(video["flow_prev"][i]),
          }) for i in range(len(video["blurry"]))
      ]
      yield clips.SequenceSource(f"{split}_{seed}", sequence, {"tau": np.float32(video["tau"])})


def sequence_seeds(config: SyntheticConfig) -> dict[str, range]:
  """The seeds of each split's sequences (empty ranges for splits the config has not)."""
  return {"train": range(config.train_sequences),
          "test": range(TEST_SEED_OFFSET, TEST_SEED_OFFSET + config.test_sequences),
          "validation": range(VALIDATION_SEED_OFFSET,
                              VALIDATION_SEED_OFFSET + config.validation_sequences)}


def render(config: SyntheticConfig, split: str, seed: int, **overrides) -> dict:
  """Sequence `seed` of `split` as the builder renders it (`synthetic.render_sequence`'s dict);
  `overrides` replace its arguments, e.g. `linear_light=True` for the same scene and motion
  averaged in linear light."""
  # Imported here so that registering the builders (`import reblur_jax.data`) stays light.
  from reblur_jax.data import synthetic
  linear_light, max_speed = config.linear_light, config.speed(split)
  if split == "train":  # Per-seed draws, apart from the scene's own random stream.
    rng = np.random.default_rng([seed, 7])
    max_speed *= rng.uniform(*config.train_speed_scale)
    linear_light = linear_light or rng.uniform() < config.train_linear_light_share
  kwargs = dict(split=split, num_frames=config.num_frames, height=config.height,
                width=config.width, exposure=config.exposure, linear_light=linear_light,
                noise_std=config.noise_std, max_speed=max_speed)
  return synthetic.render_sequence(seed, **{**kwargs, **overrides})


def builder_config(name: str) -> SyntheticConfig:
  """The `SyntheticConfig` called `name` (e.g. "study" or "study_t7": the same sequences)."""
  for config in SyntheticBlur.BUILDER_CONFIGS:
    if config.name == name:
      return config
  raise ValueError(f"no synthetic_blur config {name!r}; choose one of "
                   f"{sorted(c.name for c in SyntheticBlur.BUILDER_CONFIGS)}.")


def _round_flow(flow: np.ndarray) -> np.ndarray:
  return (np.round(flow / _FLOW_STEP) * _FLOW_STEP).astype(np.float32)
