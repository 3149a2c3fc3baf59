"""The user's own blurry videos, unlabeled: the paper's self-supervised set U (like its WFA videos).

Every video file or frame folder directly inside the manual directory is one sequence, named after
it; all go to the `train` split (self-supervised fine-tuning adapts to the very videos to deblur).
Use one `--data_dir` per collection of videos.
"""

from __future__ import annotations

import os

from reblur_jax.data.builders import clips
from reblur_jax.data.builders import frames

LAYOUT = f"""\
  <manual_dir>/
    <NAME>.mp4                 a video file ({", ".join(frames.VIDEO_EXTENSIONS)}), or
    <NAME>/NNNN.png            a folder of frames ({", ".join(frames.IMAGE_EXTENSIONS)}), sorted by
                               file name, or
    <NAME>/input/NNNN.jpg      the same one level down (DVD's qualitative_datasets layout)"""


class BlurryVideo(clips.ClipBuilder):
  """Blurry clips of the user's videos, without ground truth; split `train`."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Put your blurry videos (files or folders of frames) into one directory and pass it as the manual
directory. DVD's qualitative_datasets/ (22 real blurry videos) already has this layout. Expected:
{LAYOUT}
"""
  BUILDER_CONFIGS = clips.with_clip_lengths([
      clips.ClipConfig(name="default", description="Every video in the manual directory."),
  ])
  LABELED = False
  DESCRIPTION = "Unlabeled blurry videos supplied by the user."

  def _split_generators(self, dl_manager):
    root = self.manual_dir(dl_manager)
    sequences = [self._sequence(os.path.join(root, name)) for name in sorted(os.listdir(root))
                 if self._is_sequence(os.path.join(root, name))]
    if not sequences:
      raise FileNotFoundError(f"No videos or frame folders in {root}; expected:\n{LAYOUT}")
    return {"train": self._generate_examples("train", sequences)}

  @staticmethod
  def _is_sequence(path: str) -> bool:
    return os.path.isdir(path) or path.lower().endswith(frames.VIDEO_EXTENSIONS)

  def _sequence(self, path: str) -> clips.SequenceSource:
    if not os.path.isdir(path):
      name = os.path.splitext(os.path.basename(path))[0]
      return clips.SequenceSource(
          name, frames.read_video_sequence(path, on_corrupt=self.on_corrupt))
    name = os.path.basename(path)
    folder = os.path.join(path, "input") if os.path.isdir(os.path.join(path, "input")) else path
    paths = frames.list_images(folder, LAYOUT)
    return clips.SequenceSource(name, frames.read_sequence(name, {"blurry": paths},
                                                           on_corrupt=self.on_corrupt))
