"""A user's blurry video: reading it frame by frame, cutting it into clips, writing the result.

Input is a folder of frames (sorted by file name) or a video file, read with the same readers and
checks as the `blurry_video` dataset (`reblur_jax.data.builders.frames`): an undecodable file is a
`CorruptFrameError` naming it, frames of different sizes a `ValueError` naming the odd one.
Clips are centred on each frame and padded at the ends of the video by repeating the first / last
frame (replicate padding), exactly as the datasets' clips are (docs/data.md), so a network sees
the same windows here as in evaluation. A cut between shots (`is_cut`) ends a clip the same way,
as an unreadable frame ends one in the datasets: a multi-frame network given the other shot's
frames pastes them into the frame it restores (docs/evaluation.md).
"""

from __future__ import annotations

import dataclasses
import io
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

import imageio.v2 as imageio
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


@dataclasses.dataclass(frozen=True)
class Source:
  """A folder of frames or a video file, checked to exist, not yet decoded (`frames` reads it).

  Attributes:
    path: the folder or file.
    image_paths: the folder's frames in order; None for a video file.
    fps: frames per second of a video file; None for a folder of frames.
  """
  path: str
  image_paths: tuple[str, ...] | None
  fps: float | None

  @property
  def is_video_file(self) -> bool:
    return self.fps is not None


def open_source(path: str | os.PathLike) -> Source:
  """Finds the frames at `path` (a folder of frames or a video file) without decoding them.

  Raises:
    FileNotFoundError: nothing at `path`, or a folder without images.
    ValueError: a file that is not a known video format.
  """
  path = os.path.expanduser(os.fspath(path))
  if os.path.isdir(path):
    return Source(path, tuple(frames_lib.list_images(path, LAYOUT)), fps=None)
  if not os.path.exists(path):
    raise FileNotFoundError(f"--input: nothing at {path}; expected {LAYOUT}.")
  if not path.lower().endswith(frames_lib.VIDEO_EXTENSIONS):
    raise ValueError(f"--input: {path} is not a video file; expected {LAYOUT}.")
  try:
    fps = float(iio.immeta(path, plugin="FFMPEG").get("fps") or 0.0) or 30.0
  except (OSError, RuntimeError, ValueError) as e:
    raise frames_lib.CorruptFrameError(
        f"Cannot decode video {path}: {str(e).strip().splitlines()[0]}") from None
  return Source(path, None, fps=fps)


def frames(source: Source) -> Iterator[tuple[str, np.ndarray]]:
  """`(name, uint8 [H, W, 3])` per frame, decoded one at a time (a video never sits in memory
  whole). Names are the files' stems for a folder, `000000`... for a video file.

  Raises:
    ValueError: frames of different sizes.
    CorruptFrameError (a ValueError): an undecodable image or video.
  """
  if not source.is_video_file:
    sequence = frames_lib.read_sequence(os.path.basename(source.path),
                                        {"blurry": list(source.image_paths)}, on_corrupt="fail")
    try:
      for path, frame in zip(source.image_paths, sequence, strict=True):
        yield os.path.splitext(os.path.basename(path))[0], _decode(frame.data["blurry"])
    except frames_lib.CorruptFrameError as e:  # Its hint is the dataset preparer's option.
      raise frames_lib.CorruptFrameError(
          f"--input: {e.__cause__ or e}; expected every frame to decode: replace or remove "
          "that file.") from None
    return
  count = 0
  for count, image in enumerate(frames_lib.read_video(source.path), start=1):
    yield f"{count - 1:06d}", image
  if not count:
    raise frames_lib.CorruptFrameError(f"Cannot decode video {source.path}: it has no frames.")


def read(path: str | os.PathLike) -> Video:
  """Reads a folder of frames or a video file into memory (`open_source` and `frames`)."""
  source = open_source(path)
  names, images = zip(*frames(source))
  return Video(np.stack(images), names, fps=source.fps)


_T = TypeVar("_T")
_END = object()


def prefetch(items: Iterable[_T], size: int = 2) -> Iterator[_T]:
  """`items` in order, read up to `size` ahead by a background thread, so that decoding the next
  frames overlaps the caller's work (the network, encoding); an error reading is raised here,
  where that item would have come."""
  ahead = queue.Queue(maxsize=size)

  def read():
    try:
      for item in items:
        ahead.put((item, None))
      ahead.put((_END, None))
    except Exception as e:  # pylint: disable=broad-exception-caught
      ahead.put((_END, e))

  threading.Thread(target=read, daemon=True).start()
  while True:
    item, error = ahead.get()
    if error is not None:
      raise error
    if item is _END:
      return
    yield item


# Colour-histogram distance (`is_cut`) above which consecutive frames belong to different shots.
# Measured on the real videos of docs/baselines.md, 3-frame exposures: at most 0.14 within the
# shots of two of them, up to 0.55 within the street video's (a cyclist passing close), 0.69-1.4
# across its three cuts (docs/evaluation.md).
CUT_DISTANCE = 0.6
HISTOGRAM_BINS = 32


def colour_histograms(frame: np.ndarray) -> np.ndarray:
  """`float [3, HISTOGRAM_BINS]`: each channel's histogram (summing to 1) of an `[H, W, 3]` frame
  (integers in [0, 255], or floats in [0, 1]), from every 4th pixel of every 4th row."""
  pixels = np.asarray(frame[::4, ::4]).reshape(-1, 3)
  if np.issubdtype(pixels.dtype, np.floating):
    pixels = np.clip(pixels * 256.0, 0, 255)
  bins = pixels.astype(np.int64) * HISTOGRAM_BINS // 256
  return np.stack([np.bincount(bins[:, c], minlength=HISTOGRAM_BINS) for c in range(3)]
                  ) / len(pixels)


def is_cut(previous: np.ndarray, current: np.ndarray) -> bool:
  """Whether a frame starts a new shot, from its `colour_histograms` and the previous frame's: their
  L1 distance, mean over the channels (in [0, 2]; what motion does not change and a cut does),
  exceeds `CUT_DISTANCE`."""
  return float(np.abs(previous - current).sum(axis=1).mean()) > CUT_DISTANCE


def shots(frames: Sequence[np.ndarray]) -> np.ndarray:
  """`int [N]`: the shot of each frame, counted from 0 (`is_cut`)."""
  histograms = [colour_histograms(frame) for frame in frames]
  return np.cumsum([0] + [is_cut(a, b) for a, b in zip(histograms[:-1], histograms[1:])])


def clip_indices(index: int, half: int, shots_of: Sequence[int] | Mapping[int, int],
                 last: int) -> list[int]:
  """The frames of the clip centred on `index`: `index - half` to `index + half`, each replaced
  by the nearest frame of `index`'s shot (`shots_of[k]`) among frames 0 to `last`."""
  indices = []
  for k in range(index - half, index + half + 1):
    k = min(max(k, 0), last)
    while shots_of[k] != shots_of[index]:
      k += 1 if k < index else -1
    indices.append(k)
  return indices


def windows(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
  """`Clips(frames, size)[i]["blurry"]` for each i in order, from a stream: at most `size`
  frames are held at a time, and each frame's histograms are computed once."""
  if size < 1 or size % 2 == 0:
    raise ValueError(f"the window must be odd and positive, got {size}.")
  half, held, shot, emitted, last = size // 2, {}, {}, 0, -1
  current, previous = 0, None  # The newest frame's shot and histograms.

  def window(index):
    return np.stack([held[k] for k in clip_indices(index, half, shot, last)])

  for last, frame in enumerate(frames):
    if half:  # A 1-frame window has no neighbours to keep within the shot.
      histograms = colour_histograms(frame)
      current += previous is not None and is_cut(previous, histograms)
      previous = histograms
    held[last], shot[last] = frame, current
    if last - half >= emitted:
      yield window(emitted)
      held.pop(emitted - half, None)
      shot.pop(emitted - half, None)
      emitted += 1
  while emitted <= last:
    yield window(emitted)
    emitted += 1


def _decode(data: bytes) -> np.ndarray:
  """RGB JPEG / PNG bytes as checked by `frames.read_image` -> `uint8 [H, W, 3]`."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGB"))


class Clips(Sequence):
  """The clip of `clip_length` frames centred on every frame, as dataset examples.

  `clips[i]` is `{"blurry": uint8 [T, H, W, 3], "sequence": name, "frame": i}`, replicate-padded
  at the ends of the video and of its shots, built on access (the frames are stored once). It is
  a random-access source for `reblur_jax.data.pipeline` (the unlabeled set of test-time
  adaptation) and for inference.
  """

  def __init__(self, frames: np.ndarray, clip_length: int, name: str = "input"):
    if clip_length < 1 or clip_length % 2 == 0:
      raise ValueError(f"clip_length must be odd and positive, got {clip_length}.")
    self.frames, self.clip_length, self.name = frames, clip_length, name
    self.shots = shots(frames)

  def __len__(self) -> int:
    return len(self.frames)

  def __getitem__(self, index: int) -> dict:
    if not -len(self) <= index < len(self):
      raise IndexError(f"clip {index} of a {len(self)}-frame video")
    index %= len(self)
    window = clip_indices(index, self.clip_length // 2, self.shots, len(self) - 1)
    return {"blurry": self.frames[window], "sequence": self.name, "frame": index}


def check_output(directory: str, source: Source, *, video_name: str, overwrite: bool) -> None:
  """Raises FileExistsError if writing `source`'s results to `directory` would replace files,
  unless `overwrite` (a video's frame count is not known before decoding: any `NNNNNN.png`
  counts)."""
  if overwrite or not os.path.isdir(directory):
    return
  if source.is_video_file:
    existing = sorted(n for n in os.listdir(directory)
                      if re.fullmatch(r"\d{6}\.png", n) or n == video_name)
  else:
    planned = {os.path.splitext(os.path.basename(p))[0] + ".png" for p in source.image_paths}
    existing = sorted(planned & set(os.listdir(directory)))
  if existing:
    raise FileExistsError(
        f"--output: {directory} already holds {len(existing)} of the files to write (e.g. "
        f"{os.path.join(directory, existing[0])}); choose an empty folder or pass --overwrite to "
        "replace them.")


def write(directory: str, named_frames: Iterable[tuple[str, np.ndarray]], *,
          video_name: str | None = None, fps: float | None = None) -> dict[str, list[str]]:
  """Writes `(name, uint8 [H, W, 3])` frames as `<name>.png` as they come and, given
  `video_name`, an H.264 video of them; returns the paths (`frames`, `video`).

  The video is lossy (the PNG files are the exact result); odd frame sides are padded by one
  black pixel, which H.264's 4:2:0 chroma needs. Each file is written under a temporary name
  and renamed when complete, so a failed write (a full disk) leaves no partial file.

  Raises:
    DiskFullError: no space left; the message counts the complete frames.
  """
  os.makedirs(directory, exist_ok=True)
  paths = {"frames": []}
  video_path = os.path.join(directory, video_name) if video_name else None
  writer = None
  try:
    for name, frame in named_frames:
      path = os.path.join(directory, f"{name}.png")
      _write_complete(path, lambda tmp, frame=frame: iio.imwrite(tmp, frame))
      paths["frames"].append(path)
      if video_path:
        writer = writer or imageio.get_writer(
            _temporary(video_path), format="FFMPEG", mode="I", fps=fps, codec="libx264",
            macro_block_size=1, output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
        writer.append_data(frame)
    if writer:
      writer.close()
      os.replace(_temporary(video_path), video_path)
      paths["video"] = [video_path]
  except Exception as e:
    if writer:
      writer.close()
      os.remove(_temporary(video_path))
    if not disk.is_disk_full(e):
      raise
    raise disk.DiskFullError(
        f"no space left on device writing to {directory}: expected room for every frame (and "
        f"the video); {len(paths['frames'])} complete frames were written; free space and rerun "
        "with --overwrite.") from e
  return paths


def _temporary(path: str) -> str:
  """A hidden name next to `path` with its extension, which the writers go by."""
  return os.path.join(os.path.dirname(path), "." + os.path.basename(path))


def _write_complete(path: str, write) -> None:
  """`write(temporary path)`, then the file is renamed to `path`; removed if writing fails."""
  temporary = _temporary(path)
  try:
    write(temporary)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise
