"""The real-footage check's blur: GoPro-style averages of consecutive sharp frames."""

import numpy as np
import pytest

from experiments import real_footage


def test_blurry_frames_average_consecutive_frames_in_linear_light():
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (10, 4, 5, 3), dtype=np.uint8)
  blurry, sharp = real_footage.blur_video(frames, 3)
  assert blurry.shape == sharp.shape == (3, 4, 5, 3)  # The last, incomplete group is dropped.
  np.testing.assert_array_equal(sharp, frames[[1, 4, 7]])
  linear = (frames[3:6] / 255.0) ** 2.2
  np.testing.assert_array_equal(
      blurry[1], np.round(linear.mean(axis=0) ** (1 / 2.2) * 255).astype(np.uint8))
  still, _ = real_footage.blur_video(np.repeat(frames[:1], 6, axis=0), 3)
  np.testing.assert_array_equal(still[0], frames[0])  # No motion, no blur.


def test_even_average_is_refused():
  with pytest.raises(ValueError, match="odd"):
    real_footage.blur_video(np.zeros((4, 2, 2, 3), np.uint8), 2)
