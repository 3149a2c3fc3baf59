"""Flows estimated on the blurry frames by a classical method, for `L_U` with fixed flows.

The paper's reblur loss estimates the flows with FlowNetS on the *restored* frames. A thin
FlowNetS is about as wrong as the motion is large, and the deblur network can lower `L_U` by
changing what FlowNetS sees; scikit-image's TV-L1 on the *blurry* frames is 3x closer to the true
motion and carries 4x more deblurring signal (docs/signal_diagnostic.md). `config.flow_source =
"tvl1"` trains with these flows, computed once per unlabeled clip and then fixed.

Flows follow docs/conventions.md: `flow_prev` `[H, W, 2]` (x, y) in pixels with
`I[t-1](p) ~= I[t](p + flow_prev(p))`, likewise `flow_next` for t+1.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import skimage.color
import skimage.registration

# The features an unlabeled clip gains: the middle frame's flows to its neighbours, `[H, W, 2]`.
KEYS = ("estimated_flow_prev", "estimated_flow_next")
SOURCES = ("flownets", "tvl1")


def tvl1(first: np.ndarray, second: np.ndarray) -> np.ndarray:
  """TV-L1 flow `float32 [H, W, 2]` of `[H, W, 3]` frames (uint8 or float in [0, 1]) with
  `first(p) ~= second(p + flow(p))`, channels (x, y).

  `optical_flow_tvl1(reference, moving)` returns `(v_row, v_col)` with `reference(p) ~=
  moving(p + v)`: the reference is `first`, and the channels are swapped. About 0.08 s for a
  96-pixel frame pair on one core, growing with the pixel count.
  """
  v_row, v_col = skimage.registration.optical_flow_tvl1(skimage.color.rgb2gray(first),
                                                        skimage.color.rgb2gray(second))
  return np.stack([v_col, v_row], axis=-1).astype(np.float32)


def middle_flows(blurry: np.ndarray) -> dict[str, np.ndarray]:
  """The middle frame's TV-L1 flows to its neighbours, from a clip's `[T, H, W, 3]` frames.

  Returns `{"estimated_flow_prev": [H, W, 2], "estimated_flow_next": [H, W, 2]}`.
  """
  blurry = np.asarray(blurry)
  if blurry.ndim != 4 or len(blurry) < 3:
    raise ValueError(f"Flows of a clip's middle frame need [T >= 3, H, W, 3] frames, got shape "
                     f"{blurry.shape}.")
  middle = len(blurry) // 2
  return {"estimated_flow_prev": tvl1(blurry[middle - 1], blurry[middle]),
          "estimated_flow_next": tvl1(blurry[middle + 1], blurry[middle])}


def video_flows(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`(flow_prev, flow_next)`, each `float32 [T, H, W, 2]`, of every frame of `[T, H, W, 3]`
  frames, replicate-padded at the ends (the first frame's previous frame is itself)."""
  index = np.arange(len(frames))
  flows = [middle_flows(np.stack([frames[max(t - 1, 0)], frames[t],
                                  frames[min(t + 1, len(frames) - 1)]])) for t in index]
  return tuple(np.stack([f[key] for f in flows]) for key in KEYS)


class WithMiddleFlows(Sequence):
  """Random access to unlabeled clips, `{"blurry", *KEYS}`, each clip's flows computed once.

  Wraps a data source (`pipeline.data_source`). The flows of up to `cache_size` clips are kept
  (each `16 H W` bytes: 0.3 MB for 96-pixel frames, 29 MB for 720p); later reads of them cost
  nothing.
  """

  def __init__(self, source: Sequence[Mapping[str, Any]], cache_size: int = 4096):
    self._source = source
    self._flows = functools.lru_cache(maxsize=cache_size)(self._compute)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    if not isinstance(index, (int, np.integer)):
      raise TypeError(f"WithMiddleFlows takes integer indices, got {index!r}.")
    index = range(len(self))[index]
    return {"blurry": self._blurry(index), **self._flows(index)}

  def _blurry(self, index: int) -> np.ndarray:
    return np.asarray(self._source[index]["blurry"])

  def _compute(self, index: int) -> dict[str, np.ndarray]:
    return middle_flows(self._blurry(index))
