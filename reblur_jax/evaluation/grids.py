"""Comparison pictures: frames side by side, with a zoomed crop of each below.

    | blurry | baseline | fine-tuned | sharp |      titled columns, the crop outlined
    | crop   | crop     | crop       | crop  |      the same crop of each, enlarged

The crop is where the blur is strongest (the largest mean |blurry - sharp|), so the row shows
what the networks did where it matters.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

OUTLINE = (255, 221, 0)  # The crop's outline in the top row (yellow).


def blurriest_crop(blurry: np.ndarray, sharp: np.ndarray, size: tuple[int, int]
                   ) -> tuple[int, int]:
  """`(top, left)` of the `size` window with the largest mean |blurry - sharp| (`[H, W, 3]`)."""
  error = np.abs(np.asarray(blurry, np.float64) - sharp).mean(axis=-1)
  h, w = size
  # Sums over every h x w window from the integral image.
  integral = np.pad(error.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
  sums = integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w]
  top, left = np.unravel_index(np.argmax(sums), sums.shape)
  return int(top), int(left)


def comparison(panels: Mapping[str, np.ndarray], *, crop: tuple[int, int] | None = None,
               zoom: int = 4) -> np.ndarray:
  """A titled grid of `panels` (name -> `[H, W, 3]` in `[0, 1]`) over their zoomed crops.

  Args:
    panels: the columns, in order, all the same size.
    crop: `(top, left)` of the crop, `(H // zoom, W // zoom)` pixels; None: `blurriest_crop`
      of panels "blurry" and "sharp" (the centre if either is missing).
    zoom: enlargement of the crop row.

  Returns:
    `uint8 [title + 2 H, len(panels) W, 3]`.
  """
  images = [np.asarray(np.round(np.clip(p, 0.0, 1.0) * 255.0), np.uint8) for p in panels.values()]
  height, width = images[0].shape[:2]
  size = (max(1, height // zoom), max(1, width // zoom))
  if crop is None:
    crop = (blurriest_crop(panels["blurry"], panels["sharp"], size)
            if {"blurry", "sharp"} <= panels.keys()
            else ((height - size[0]) // 2, (width - size[1]) // 2))
  top, left = crop
  zoomed = [np.repeat(np.repeat(im[top:top + size[0], left:left + size[1]], zoom, 0), zoom, 1)
            for im in images]
  zoomed = [np.pad(z, ((0, height - z.shape[0]), (0, width - z.shape[1]), (0, 0))) for z in zoomed]
  grid = Image.fromarray(np.concatenate([np.concatenate(images, 1), np.concatenate(zoomed, 1)]))

  font = ImageFont.load_default(size=max(8, min(24, width // 8)))
  title = font.size + 6
  canvas = Image.new("RGB", (grid.width, grid.height + title), "white")
  canvas.paste(grid, (0, title))
  draw = ImageDraw.Draw(canvas)
  line = max(1, width // 256)
  for i, name in enumerate(panels):
    draw.text((i * width + 3, 2), name, fill="black", font=font)
    draw.rectangle((i * width + left, title + top, i * width + left + size[1] - 1,
                    title + top + size[0] - 1), outline=OUTLINE, width=line)
  return np.asarray(canvas)
