"""DVD (Su et al., CVPR 2017): `quantitative_datasets` read from a manual directory.

Splits: `train` (the 61 training videos), `test` (every frame of the 10 test videos) and `test30`,
the original evaluation protocol: 30 frames per test video, MATLAB `floor(linspace(2, 97, 30))`,
1-based indices into each video's sorted frame list (0-based here: those minus one). `test30`
clips still take their neighbours from the whole video.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import tensorflow_datasets as tfds

from reblur_jax.data.builders import clips
from reblur_jax.data.builders import frames

TEST_VIDEOS = ("IMG_0030", "IMG_0049", "IMG_0021", "720p_240fps_2", "IMG_0032", "IMG_0033",
               "IMG_0031", "IMG_0003", "IMG_0039", "IMG_0037")
PROTOCOL_FRAMES = tuple(int(i) - 1 for i in np.floor(np.linspace(2, 97, 30)))

LAYOUT = """\
  <manual_dir>/quantitative_datasets/   (or <manual_dir> itself)
    <VIDEO>/input/NNNNN.jpg               blurry frames, e.g. IMG_0030/input/00000.jpg
    <VIDEO>/GT/NNNNN.jpg                  sharp frames, same file names as input/
  Videos named in reblur_jax.data.builders.dvd.TEST_VIDEOS form the test split, the others train."""


class Dvd(clips.ClipBuilder):
  """DVD blurry/sharp clips; splits `train`, `test` (all frames) and `test30` (the protocol)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download DeepVideoDeblurring_Dataset.zip from the project page
https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/ (also linked from
https://github.com/shuochsu/DeepVideoDeblurring), unzip it, and pass the folder that contains
quantitative_datasets/ (or quantitative_datasets/ itself) as the manual directory. Expected layout:
{LAYOUT}
For its qualitative_datasets/ (real blurry videos without ground truth), use `blurry_video`.
"""
  BUILDER_CONFIGS = clips.with_clip_lengths([
      clips.ClipConfig(name="default", description="All quantitative videos."),
  ])
  DESCRIPTION = ("Deep Video Deblurring set: 240 fps videos from phones and cameras, consecutive "
                 "frames averaged into 30 fps blurry frames, the middle one their ground truth.")
  HOMEPAGE = "https://www.cs.ubc.ca/labs/imager/tr/2017/DeepVideoDeblurring/"
  CITATION = """\
@inproceedings{su2017deep,
  title={Deep Video Deblurring for Hand-held Cameras},
  author={Su, Shuochen and Delbracio, Mauricio and Wang, Jue and Sapiro, Guillermo and
          Heidrich, Wolfgang and Wang, Oliver},
  booktitle={CVPR}, year={2017}}"""

  def _split_generators(self, dl_manager):
    root = self.manual_dir(dl_manager)
    if os.path.isdir(os.path.join(root, "quantitative_datasets")):
      root = os.path.join(root, "quantitative_datasets")
    videos = frames.subdirs(root)
    missing = sorted(set(TEST_VIDEOS) - set(videos))
    if missing:
      warnings.warn(f"DVD test videos missing from {root}: {missing}; the test splits will not "
                    "match published numbers.", stacklevel=2)
    by_split = {
        "train": [v for v in videos if v not in TEST_VIDEOS],
        "test": [v for v in videos if v in TEST_VIDEOS],
    }
    for split, names in by_split.items():
      if not names:
        raise FileNotFoundError(f"No {split} videos in {root}; expected:\n{LAYOUT}")
    return {
        "train": self._generate_examples("train", self._sequences(root, by_split["train"])),
        "test": self._generate_examples("test", self._sequences(root, by_split["test"])),
        "test30": self._generate_examples(
            "test30", self._sequences(root, by_split["test"], PROTOCOL_FRAMES)),
    }

  def _sequences(self, root: str, names: list[str],
                 middle_frames: tuple[int, ...] | None = None) -> list[clips.SequenceSource]:
    """Lists (and checks) the videos `names` now; frames are read while building."""
    return [self._sequence(os.path.join(root, name), name, middle_frames) for name in names]

  def _sequence(self, folder: str, name: str, middle_frames) -> clips.SequenceSource:
    blurry, sharp = frames.paired_images(
        os.path.join(folder, "input"), os.path.join(folder, "GT"), LAYOUT)
    if middle_frames is not None and len(blurry) <= max(middle_frames):
      raise ValueError(f"Video {folder} has {len(blurry)} frames; the 30-frame protocol needs at "
                       f"least {max(middle_frames) + 1}.")
    return clips.SequenceSource(
        name, frames.read_sequence(name, {"blurry": blurry, "sharp": sharp},
                                   on_corrupt=self.on_corrupt),
        middle_frames=middle_frames)
