"""A user's blurry video in memory: reading it, cutting it into clips, writing the result.

Input is a folder of frames (sorted by file name) or a video file, read with the same readers and
checks as the `blurry_video` dataset (`reblur_jax.data.builders.frames`): an undecodable file is a
`CorruptFrameError` naming it, frames of different sizes a `ValueError` naming the odd one.
Clips are centred on each frame and padded at the ends of the video by repeating the first / last
frame (replicate padding), exactly as the datasets' clips are (docs/data.md), so a network sees
the same windows here as in evaluation.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image

from reblur_jax import disk
from reblur_jax.data.builders import frames as frames_lib

LAYOUT = (f"a folder of frames ({', '.join(frames_lib.IMAGE_EXTENSIONS)}, sorted by file name) "
          f"or a video file ({', '.join(frames_lib.VIDEO_EXTENSIONS)})")


@dataclasses.dataclass(frozen=True)
class Video:
  """Decoded frames and where they came from.

  Attributes:
    frames: `uint8 [N, H, W, 3]`.
    names: a file stem per frame, for the output files (the input's own names for a folder).
    fps: frames per second of a video file; None for a folder of frames.
  """
  frames: np.ndarray
  names: tuple[str, ...]
  fps: float | None

  @property
  def is_video_file(self) -> bool:
    return self.fps is not None


def read(path: str | os.PathLike) -> Video:
  """Reads a folder of frames or a video file.

  Raises:
    FileNotFoundError: nothing at `path`, or a folder without images.
    ValueError: a file that is not a known video format; frames of different sizes.
    CorruptFrameError (a ValueError): an undecodable image or video.
  """
  path = os.path.expanduser(os.fspath(path))
  if os.path.isdir(path):
    paths = frames_lib.list_images(path, LAYOUT)
    sequence = frames_lib.read_sequence(os.path.basename(path), {"blurry": paths},
                                        on_corrupt="fail")
    try:
      images = [_decode(frame.data["blurry"]) for frame in sequence]
    except frames_lib.CorruptFrameError as e:  # Its hint is the dataset preparer's option.
      raise frames_lib.CorruptFrameError(
          f"--input: {e.__cause__ or e}; expected every frame to decode: replace or remove "
          "that file.") from None
    names = tuple(os.path.splitext(os.path.basename(p))[0] for p in paths)
    return Video(np.stack(images), names, fps=None)
  if not os.path.exists(path):
    raise FileNotFoundError(f"--input: nothing at {path}; expected {LAYOUT}.")
  if not path.lower().endswith(frames_lib.VIDEO_EXTENSIONS):
    raise ValueError(f"--input: {path} is not a video file; expected {LAYOUT}.")
  images = list(frames_lib.read_video(path))
  if not images:
    raise frames_lib.CorruptFrameError(f"Cannot decode video {path}: it has no frames.")
  fps = float(iio.immeta(path, plugin="FFMPEG").get("fps") or 0.0) or 30.0
  return Video(np.stack(images), tuple(f"{i:06d}" for i in range(len(images))), fps=fps)


def _decode(data: bytes) -> np.ndarray:
  """RGB JPEG / PNG bytes as checked by `frames.read_image` -> `uint8 [H, W, 3]`."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGB"))


class Clips(Sequence):
  """The clip of `clip_length` frames centred on every frame, as dataset examples.

  `clips[i]` is `{"blurry": uint8 [T, H, W, 3], "sequence": name, "frame": i}`, replicate-padded
  at the ends, built on access (the frames are stored once). It is a random-access source for
  `reblur_jax.data.pipeline` (the unlabeled set of test-time adaptation) and for inference.
  """

  def __init__(self, frames: np.ndarray, clip_length: int, name: str = "input"):
    if clip_length < 1 or clip_length % 2 == 0:
      raise ValueError(f"clip_length must be odd and positive, got {clip_length}.")
    self.frames, self.clip_length, self.name = frames, clip_length, name

  def __len__(self) -> int:
    return len(self.frames)

  def __getitem__(self, index: int) -> dict:
    if not -len(self) <= index < len(self):
      raise IndexError(f"clip {index} of a {len(self)}-frame video")
    index %= len(self)
    half = self.clip_length // 2
    window = np.clip(np.arange(index - half, index + half + 1), 0, len(self) - 1)
    return {"blurry": self.frames[window], "sequence": self.name, "frame": index}


def output_paths(directory: str, video: Video, *, stem: str) -> dict[str, list[str]]:
  """Where `write` puts the restored frames (`frames`) and, for a video input, the video."""
  paths = {"frames": [os.path.join(directory, f"{name}.png") for name in video.names]}
  if video.is_video_file:
    paths["video"] = [os.path.join(directory, f"{stem}.mp4")]
  return paths


def check_output(directory: str, paths: dict[str, list[str]], *, overwrite: bool) -> None:
  """Raises FileExistsError if writing `paths` would replace files, unless `overwrite`."""
  if overwrite:
    return
  existing = [p for group in paths.values() for p in group if os.path.exists(p)]
  if existing:
    raise FileExistsError(
        f"--output: {directory} already holds {len(existing)} of the files to write (e.g. "
        f"{existing[0]}); choose an empty folder or pass --overwrite to replace them.")


def write(paths: dict[str, list[str]], frames: np.ndarray, *, fps: float | None) -> None:
  """Writes `uint8 [N, H, W, 3]` frames as PNG files and, if `paths` has one, an H.264 video.

  The video is lossy (the PNG files are the exact result); odd frame sides are padded by one
  black pixel, which H.264's 4:2:0 chroma needs. Each file is written under a temporary name
  and renamed when complete, so a failed write (a full disk) leaves no partial file.

  Raises:
    DiskFullError: no space left; the message counts the complete frames.
  """
  directory = os.path.dirname(paths["frames"][0]) or "."
  os.makedirs(directory, exist_ok=True)
  written = 0
  try:
    for path, frame in zip(paths["frames"], frames, strict=True):
      _write_complete(path, lambda tmp, frame=frame: iio.imwrite(tmp, frame))
      written += 1
    if "video" in paths:
      _write_complete(paths["video"][0], lambda tmp: iio.imwrite(
          tmp, frames, plugin="FFMPEG", fps=fps, codec="libx264",
          macro_block_size=1, output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]))
  except Exception as e:
    if not disk.is_disk_full(e):
      raise
    raise disk.DiskFullError(
        f"no space left on device writing to {directory}: expected room for {len(frames)} "
        f"frames (and the video), {written} complete frames were written; free space and rerun "
        "with --overwrite.") from e


def _write_complete(path: str, write) -> None:
  """`write(temporary path)`, then the file is renamed to `path`; removed if writing fails.

  The temporary file is hidden (a leading dot) and keeps the extension the writers go by.
  """
  temporary = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
  try:
    write(temporary)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise
