"""Deblurring whole frames: native resolution, tiles when memory requires, time per frame.

The deblur networks pad frames to their stride and crop the result back themselves, so frames of
any size go in whole. A frame too large for the device's memory is restored in overlapping tiles
(`tiling.apply_tiled`, ramp-blended); `choose_tile` finds out once per frame shape whether that is
needed. Tiling matches whole-frame inference where the network's receptive field fits in a tile,
except for DeblurGAN, whose instance norm takes each tile's own statistics: whole frames are used
whenever they fit.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator

import jax
import numpy as np
import tqdm
from absl import logging

from reblur_jax.evaluation import video
from reblur_jax.evaluation.tiling import apply_tiled

TILES = (1024, 512, 256, 128)  # Tile sides tried, largest first, when whole frames do not fit.
OVERLAP = 32  # Pixels shared by neighbouring tiles.
PAPER_SIZE = (720, 1280)  # (H, W) at which the paper reports run time (Table 2: 1280x720).

DeblurFn = Callable[[np.ndarray], jax.Array]


def dispatch(fn: DeblurFn, windows: np.ndarray, *, tile: int = 0):
  """`restore` without waiting: whole frames return a device array still being computed (JAX
  dispatches asynchronously), so the caller's host work overlaps the network."""
  return apply_tiled(fn, windows, tile=tile, overlap=OVERLAP) if tile else fn(windows)


def restore(fn: DeblurFn, windows: np.ndarray, *, tile: int = 0) -> np.ndarray:
  """Restores the middle frames of `windows`.

  Args:
    fn: a deblur network, `[B, n, h, w, 3] -> [B, h, w, 3]` (`networks.deblur_fn`).
    windows: `float32 [B, n, H, W, 3]` in `[0, 1]`.
    tile: 0 for whole frames, else the side of square tiles in pixels (`choose_tile`).

  Returns:
    `float32 [B, H, W, 3]` on the host, not clamped.
  """
  return np.asarray(dispatch(fn, windows, tile=tile), np.float32)


def deblur_frames(fn: DeblurFn, frames: Iterable[np.ndarray], window: int, *,
                  tile: int | None = None) -> Iterator[np.ndarray]:
  """Restores each `uint8 [H, W, 3]` frame of a stream from its `window`-frame clip (replicate-
  padded, as `video.Clips`); yields `uint8` frames in order, holding `window` frames at a time.

  Decoding runs ahead in a thread (`video.prefetch`) and frame i + 1 is dispatched before frame
  i is fetched, so reading, the network and the consumer's encoding overlap.
  """
  to_uint8 = lambda output: np.round(
      np.clip(np.asarray(output, np.float32)[0], 0.0, 1.0) * 255.0).astype(np.uint8)
  chosen, pending = None, None
  for clip in tqdm.tqdm(video.windows(video.prefetch(frames), window), desc="deblur",
                        unit="frame", dynamic_ncols=True):
    windows = clip[None].astype(np.float32) / np.float32(255.0)
    if chosen is None:
      chosen = choose_tile(fn, windows.shape, tile=tile)
    running = dispatch(fn, windows, tile=chosen)
    if pending is not None:
      yield to_uint8(pending)
    pending = running
  if pending is not None:
    yield to_uint8(pending)


def choose_tile(fn: DeblurFn, window_shape: tuple[int, ...], *, tile: int | None = None) -> int:
  """The `tile` argument of `restore` for windows shaped `window_shape` (`[B, n, H, W, 3]`).

  Args:
    fn: the deblur network.
    window_shape: the shape of the windows to restore.
    tile: None picks automatically: 0 (whole frames) if a whole window fits in device memory,
      else the largest of `TILES` that does. An int is returned as it is.

  Automatic choice runs `fn` on zeros of that shape (which also compiles it), once per
  candidate, so call it once per frame shape.

  Raises:
    MemoryError: not even the smallest tile fits.
  """
  if tile is not None:
    return tile
  zeros = np.zeros(window_shape, np.float32)
  side = max(window_shape[-3:-1])
  for candidate in (0,) + tuple(t for t in TILES if t < side):
    try:
      jax.block_until_ready(dispatch(fn, zeros, tile=candidate))
      return candidate
    except jax.errors.JaxRuntimeError as e:
      if "RESOURCE_EXHAUSTED" not in str(e):
        raise
      logging.warning("Frames shaped %s do not fit in device memory %s; trying smaller tiles.",
                      window_shape, "whole" if not candidate else f"in {candidate}-pixel tiles")
  raise MemoryError(f"Windows shaped {window_shape} do not fit in device memory even in "
                    f"{TILES[-1]}-pixel tiles.")


def time_per_frame(fn: DeblurFn, num_frames: int, size: tuple[int, int] = PAPER_SIZE, *,
                   tile: int | None = None, repeats: int = 3) -> tuple[float, int]:
  """Mean seconds to restore one frame of `size` (H, W) on the default device.

  Times `repeats` calls after a compiling one, each synchronised (`block_until_ready`), with the
  input already on the device: the network's time, not decoding or host transfers.

  Returns:
    `(seconds per frame, tile used)`.
  """
  windows = np.random.default_rng(0).random((1, num_frames, *size, 3), np.float32)
  tile = choose_tile(fn, windows.shape, tile=tile)
  windows = windows if tile else jax.device_put(windows)
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(dispatch(fn, windows, tile=tile))
  return (time.perf_counter() - start) / repeats, tile


def device_description() -> str:
  """What `time_per_frame` ran on, e.g. "NVIDIA H100 80GB HBM3 (gpu)" or "CPU: 2 cores, ..."."""
  device = jax.devices()[0]
  if device.platform != "cpu":
    return f"{device.device_kind} ({device.platform})"
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return f"CPU: {cores} cores, {_cpu_model()}"


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
