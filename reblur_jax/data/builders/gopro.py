"""GoPro (Nah et al., CVPR 2017), the paper's "MCD": `GOPRO_Large` read from a manual directory."""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from reblur_jax.data.builders import clips
from reblur_jax.data.builders import frames

LAYOUT = """\
  <manual_dir>/GOPRO_Large/          (or <manual_dir> itself)
    train/<SEQ>/blur/NNNNNN.png        e.g. train/GOPR0372_07_00/blur/000047.png
    train/<SEQ>/blur_gamma/NNNNNN.png
    train/<SEQ>/sharp/NNNNNN.png       same file names as blur/
    test/<SEQ>/...                     the same, for the test sequences"""


@dataclasses.dataclass(eq=False)
class GoproConfig(clips.ClipConfig):
  """`blur_folder`: which blurry frames to read, "blur" or "blur_gamma"."""

  blur_folder: str = "blur"


class Gopro(clips.ClipBuilder):
  """GoPro blurry/sharp clips, per sequence; splits `train` (22 sequences), `test` (11)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download GOPRO_Large.zip from https://seungjunnah.github.io/Datasets/gopro.html
(the "GOPRO_Large" link; not GOPRO_Large_all), unzip it, and pass the folder that contains
GOPRO_Large/ (or GOPRO_Large/ itself) as the manual directory. Expected layout:
{LAYOUT}
"""
  BUILDER_CONFIGS = clips.with_clip_lengths([
      GoproConfig(name="blur", blur_folder="blur",
                  description="Blurry frames averaged from the stored (gamma-encoded) values."),
      GoproConfig(name="blur_gamma", blur_folder="blur_gamma",
                  description="Blurry frames averaged in linear light (gamma 2.2)."),
  ])
  DESCRIPTION = ("GoPro dynamic-scene deblurring set: 240 fps GoPro video, 7-13 consecutive frames "
                 "averaged into each blurry frame, the middle one its sharp ground truth.")
  HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro.html"
  CITATION = """\
@inproceedings{nah2017deep,
  title={Deep Multi-Scale Convolutional Neural Network for Dynamic Scene Deblurring},
  author={Nah, Seungjun and Kim, Tae Hyun and Lee, Kyoung Mu},
  booktitle={CVPR}, year={2017}}"""

  def _split_generators(self, dl_manager):
    root = self.manual_dir(dl_manager)
    if os.path.isdir(os.path.join(root, "GOPRO_Large")):
      root = os.path.join(root, "GOPRO_Large")
    return {split: self._generate_examples(split, self._sequences(root, split))
            for split in ("train", "test")}

  def _sequences(self, root: str, split: str) -> list[clips.SequenceSource]:
    """Lists (and checks) every sequence of `split` now; frames are read while building."""
    split_dir = frames.require_dir(os.path.join(root, split), LAYOUT)
    names = frames.subdirs(split_dir)
    if not names:
      raise FileNotFoundError(f"No sequence folders in {split_dir}; expected:\n{LAYOUT}")
    return [self._sequence(os.path.join(split_dir, name), name) for name in names]

  def _sequence(self, folder: str, name: str) -> clips.SequenceSource:
    blurry, sharp = frames.paired_images(os.path.join(folder, self.builder_config.blur_folder),
                                         os.path.join(folder, "sharp"), LAYOUT)
    return clips.SequenceSource(name, frames.read_sequence(
        name, {"blurry": blurry, "sharp": sharp}, on_corrupt=self.on_corrupt))
