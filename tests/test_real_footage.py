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


def test_mild_validation_videos_are_rendered_scenes_blurred_like_the_real_ones():
  from experiments import adaptation  # pylint: disable=g-import-not-at-top
  from reblur_jax import metrics  # pylint: disable=g-import-not-at-top
  slow, fast = (adaptation.mild_videos(2, frames=3, size=32, exposure=3, max_speed=speed)
                for speed in (2.0, 8.0))
  assert list(slow) == list(fast) == ["mild_2000100", "mild_2000101"]  # Validation seeds.
  for (blurry_slow, sharp_slow), (blurry_fast, sharp_fast) in zip(slow.values(), fast.values()):
    assert blurry_slow.shape == sharp_slow.shape == (3, 32, 32, 3)
    psnr = [float(np.mean(metrics.psnr(b / 255.0, s / 255.0)))
            for b, s in ((blurry_slow, sharp_slow), (blurry_fast, sharp_fast))]
    assert psnr[0] > psnr[1]  # More motion, more blur.
