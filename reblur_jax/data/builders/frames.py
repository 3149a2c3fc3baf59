"""Frames on disk: listing image folders, reading images and videos, checking what was read.

Builders of real data read user-provided files, so everything here validates: an unreadable
(corrupt or truncated) image raises `CorruptFrameError` naming its path, frames of different sizes
in one sequence raise a `ValueError` naming the sequence, and a missing folder raises a
`FileNotFoundError` naming the path and the layout that was expected there.

Frames are passed on as encoded bytes (`Frame.data`): RGB JPEG and PNG files are stored as they
are (no re-encoding, so nothing is lost and building is fast); anything else (greyscale, RGBA,
palette, other formats, video frames) is converted to RGB and encoded as PNG.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import imageio.v3 as iio
import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
ON_CORRUPT = ("fail", "skip")

_PASSTHROUGH_FORMATS = ("JPEG", "PNG")


class CorruptFrameError(ValueError):
  """An image or video that cannot be decoded; the message names its path."""


class Frame(NamedTuple):
  """One frame of a sequence.

  Attributes:
    index: position of the frame in its sequence (0-based, counting unreadable frames too).
    data: per-feature values of this frame: encoded image bytes, or arrays such as flows.
  """

  index: int
  data: Mapping[str, bytes | np.ndarray]


def require_dir(path: os.PathLike | str, layout: str) -> str:
  """Returns `path` if it is a directory, else raises naming it and the expected `layout`."""
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"Expected a directory at {path}, laid out as:\n{layout}")
  return path


def list_images(folder: str, layout: str) -> list[str]:
  """Image files directly in `folder`, sorted by name; raises if there are none."""
  require_dir(folder, layout)
  names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
  if not names:
    raise FileNotFoundError(
        f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {folder}; expected:\n{layout}")
  return [os.path.join(folder, n) for n in names]


def paired_images(blurry_dir: str, sharp_dir: str, layout: str) -> tuple[list[str], list[str]]:
  """The blurry and sharp frames of a labeled sequence, paired by file name (sorted).

  Raises:
    FileNotFoundError: a folder is missing or holds no images.
    ValueError: the two folders hold different file names.
  """
  blurry, sharp = list_images(blurry_dir, layout), list_images(sharp_dir, layout)
  blurry_names = [os.path.basename(p) for p in blurry]
  sharp_names = [os.path.basename(p) for p in sharp]
  if blurry_names != sharp_names:
    unmatched = sorted(set(blurry_names) ^ set(sharp_names))
    raise ValueError(f"{blurry_dir} and {sharp_dir} hold different file names (unmatched: "
                     f"{unmatched[:5]}); each blurry frame needs its sharp frame under the same "
                     "name.")
  return blurry, sharp


def subdirs(folder: str) -> list[str]:
  """Names of the sub-directories of `folder`, sorted."""
  return sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))


def png_bytes(image: np.ndarray) -> bytes:
  """PNG encoding of a `uint8 [H, W, 3]` image."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def read_image(path: str) -> tuple[bytes, tuple[int, int]]:
  """Decodes the image at `path` fully (which validates it): its RGB bytes and `(H, W)`.

  Raises:
    CorruptFrameError: the file cannot be decoded (truncated, corrupt, not an image).
  """
  with open(path, "rb") as f:
    data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      if not (image.format in _PASSTHROUGH_FORMATS and image.mode == "RGB"):
        data = png_bytes(np.asarray(image.convert("RGB")))
      return data, (image.height, image.width)
  except (OSError, SyntaxError, ValueError) as e:  # What PIL raises for undecodable files.
    raise CorruptFrameError(f"Cannot decode image {path}: {e}") from e


def read_video(path: str) -> Iterator[np.ndarray]:
  """The frames of the video file at `path`, `uint8 [H, W, 3]`, decoded with imageio (ffmpeg).

  Raises:
    CorruptFrameError: the file cannot be decoded.
  """
  try:
    for frame in iio.imiter(path, plugin="FFMPEG"):
      yield np.asarray(frame)[..., :3]
  except (OSError, RuntimeError, ValueError) as e:
    raise CorruptFrameError(f"Cannot decode video {path}: {str(e).splitlines()[0]}") from e


def read_sequence(name: str, paths: Mapping[str, Sequence[str]], *,
                  on_corrupt: str) -> Iterator[Frame | None]:
  """Reads a sequence stored as image files, one stream per feature, frame by frame.

  Args:
    name: the sequence's name, for error messages.
    paths: feature name -> its frames' paths in order; all streams equally long (e.g. the
      `blurry` and `sharp` frames of a labeled sequence).
    on_corrupt: "fail" raises on an unreadable image; "skip" warns (naming the path) and yields
      `None` in its place, so that clips are never built across the gap (see `clips.windows`).

  Yields:
    A `Frame` of encoded images per position, or `None` for a skipped one.

  Raises:
    ValueError: frames of different sizes in the sequence.
    CorruptFrameError: with `on_corrupt="fail"`, an unreadable image.
  """
  check_on_corrupt(on_corrupt)
  size = None
  for index in range(len(next(iter(paths.values())))):
    try:
      read = {key: read_image(p[index]) for key, p in paths.items()}
    except CorruptFrameError as e:
      _handle_corrupt(e, on_corrupt)
      yield None
      continue
    for key, (_, frame_size) in read.items():
      size = size or frame_size
      if frame_size != size:
        raise ValueError(
            f"Sequence {name!r}: frame {paths[key][index]} is {frame_size[0]}x{frame_size[1]} "
            f"(HxW) but earlier frames are {size[0]}x{size[1]}; all frames of a sequence must "
            "have one size. Resize or remove the odd frames.")
    yield Frame(index, {key: encoded for key, (encoded, _) in read.items()})


def read_video_sequence(path: str, *, on_corrupt: str) -> Iterator[Frame]:
  """Reads the video at `path` as a sequence of `blurry` frames (PNG-encoded).

  An undecodable video fails or, with `on_corrupt="skip"`, is skipped from the first frame that
  cannot be read, with a warning naming the path.
  """
  check_on_corrupt(on_corrupt)
  try:
    for index, frame in enumerate(read_video(path)):
      yield Frame(index, {"blurry": png_bytes(frame)})
  except CorruptFrameError as e:
    _handle_corrupt(e, on_corrupt)


def check_on_corrupt(on_corrupt: str) -> None:
  """Raises unless `on_corrupt` is one of `ON_CORRUPT`."""
  if on_corrupt not in ON_CORRUPT:
    raise ValueError(f"on_corrupt must be one of {ON_CORRUPT}, got {on_corrupt!r}.")


def _handle_corrupt(error: CorruptFrameError, on_corrupt: str) -> None:
  if on_corrupt == "fail":
    raise CorruptFrameError(f"{error} (pass on_corrupt='skip', or --on_corrupt=skip to "
                            "`reblur_jax.data.prepare`, to skip it with a warning)") from error
  warnings.warn(f"Skipping: {error}", stacklevel=3)
