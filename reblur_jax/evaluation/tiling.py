"""Running an image-to-image network on frames too large for memory, tile by tile.

Tiles overlap and are blended with a separable ramp window, so seams do not show; every tile has
the same shape, so the network compiles once whatever the frame size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
  """Start offsets of tiles of length `tile` covering `[0, size)` with at least `overlap` shared."""
  if tile >= size:
    return [0]
  if not 0 <= overlap < tile:
    raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}.")
  stride = tile - overlap
  starts = list(range(0, size - tile, stride))
  return starts + [size - tile]


def _ramp(length: int, overlap: int) -> np.ndarray:
  """1-D blending weights: linear rise/fall over `overlap` pixels at each end, 1 inside."""
  w = np.ones(length, np.float32)
  if overlap:
    edge = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    w[:overlap] = edge
    w[length - overlap:] = edge[::-1]
  return w


def apply_tiled(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, tile: int,
                overlap: int = 32) -> np.ndarray:
  """Applies `fn` to overlapping spatial tiles of `x` and blends the results.

  Args:
    fn: maps `[..., h, w, C]` to `[B, h, w, C']` where `B = x.shape[0]` (e.g. a deblur network on
      clip windows `[B, n, h, w, 3]` returning the middle frame).
    x: input `[B, ..., H, W, C]`; tiles cut the last-but-one two axes.
    tile: tile side in pixels (a multiple of the network's stride).
    overlap: pixels shared by neighbouring tiles.

  Returns:
    `[B, H, W, C']`, equal to `fn(x)` wherever the network's receptive field fits within a tile.
  """
  height, width = x.shape[-3:-1]
  th, tw = min(tile, height), min(tile, width)
  # Border pixels covered by one tile get a small weight, and the normalisation undoes it.
  window = np.outer(_ramp(th, min(overlap, th // 2)), _ramp(tw, min(overlap, tw // 2)))
  out, total = None, np.zeros((height, width, 1), np.float32)
  for top in tile_starts(height, th, overlap):
    for left in tile_starts(width, tw, overlap):
      y = np.asarray(fn(x[..., top:top + th, left:left + tw, :]), np.float32)
      if out is None:
        out = np.zeros(y.shape[:1] + (height, width) + y.shape[-1:], np.float32)
      out[:, top:top + th, left:left + tw] += y * window[..., None]
      total[top:top + th, left:left + tw] += window[..., None]
  return out / total
