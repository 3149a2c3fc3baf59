"""Tiled inference equals whole-frame inference for local operators."""

import numpy as np
import pytest
from scipy import ndimage

from reblur_jax.evaluation.tiling import apply_tiled, tile_starts


def _middle_frame_op(x):
  """A pointwise 'network' on clip windows `[B, n, h, w, C]` -> `[B, h, w, C]`."""
  return 0.5 * x[:, x.shape[1] // 2] + 0.25


def _box_blur(x):
  """A local operator with a 3x3 receptive field on `[B, h, w, C]`."""
  return ndimage.uniform_filter(x, size=(1, 3, 3, 1), mode="nearest")


@pytest.mark.parametrize("size", [(70, 45), (64, 64), (20, 33)])
def test_tiles_cover_the_frame(size):
  for length in size:
    starts = tile_starts(length, 32, 8)
    assert starts[0] == 0 and starts[-1] + min(32, length) == length
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))


def test_pointwise_network_is_exact():
  x = np.random.default_rng(0).random((2, 5, 70, 45, 3), np.float32)
  np.testing.assert_allclose(apply_tiled(_middle_frame_op, x, tile=32, overlap=8),
                             _middle_frame_op(x), atol=1e-6)


def test_local_operator_is_close_and_seamless():
  x = np.random.default_rng(1).random((1, 70, 45, 3), np.float32)
  tiled = apply_tiled(_box_blur, x, tile=32, overlap=8)
  whole = _box_blur(x)
  # Only pixels within one pixel of a tile's inner edge see its truncated receptive field, and
  # the ramp gives them at most 1.5 / 8 of the weight.
  assert np.max(np.abs(tiled - whole)) < 0.2
  assert np.mean(np.abs(tiled - whole)) < 5e-3


def test_bad_overlap():
  with pytest.raises(ValueError, match="overlap"):
    tile_starts(100, 32, 32)
