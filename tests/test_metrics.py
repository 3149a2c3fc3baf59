"""Metrics agree with scikit-image on real photos and random images."""

import jax
import numpy as np
import pytest
import skimage.data
import skimage.metrics
from skimage.transform import resize

from reblur_jax import metrics

SKIMAGE_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                    data_range=1.0, channel_axis=-1)


def _photo_pair(rng):
  photo = resize(skimage.data.astronaut(), (64, 48), anti_aliasing=True).astype(np.float32)
  noisy = np.clip(photo + rng.normal(0.0, 0.05, photo.shape), 0.0, 1.0).astype(np.float32)
  return photo, noisy


def _random_pair(rng):
  x = rng.random((40, 56, 3), dtype=np.float32)
  y = np.clip(x + rng.normal(0.0, 0.2, x.shape), 0.0, 1.0).astype(np.float32)
  return x, y


@pytest.mark.parametrize("make_pair", [_photo_pair, _random_pair])
def test_matches_skimage(make_pair):
  x, y = make_pair(np.random.default_rng(0))
  assert abs(float(metrics.psnr(x, y)) -
             skimage.metrics.peak_signal_noise_ratio(x, y, data_range=1.0)) < 1e-4
  assert abs(float(metrics.ssim(x, y)) -
             skimage.metrics.structural_similarity(x, y, **SKIMAGE_SSIM)) < 1e-4


def test_batched_and_jitted_equal_per_image():
  rng = np.random.default_rng(1)
  pairs = [_random_pair(rng) for _ in range(6)]
  x = np.stack([p[0] for p in pairs]).reshape(2, 3, 40, 56, 3)
  y = np.stack([p[1] for p in pairs]).reshape(2, 3, 40, 56, 3)
  batched = jax.jit(lambda a, b: (metrics.psnr(a, b), metrics.ssim(a, b)))(x, y)
  assert batched[0].shape == batched[1].shape == (2, 3)
  for k, (a, b) in enumerate(pairs):
    i, j = divmod(k, 3)
    np.testing.assert_allclose(batched[0][i, j], metrics.psnr(a, b), rtol=1e-5)
    np.testing.assert_allclose(batched[1][i, j], metrics.ssim(a, b), rtol=1e-5)


def test_identical_images_score_perfectly():
  x, _ = _random_pair(np.random.default_rng(2))
  assert np.isinf(metrics.psnr(x, x))
  assert abs(float(metrics.ssim(x, x)) - 1.0) < 1e-6


def test_bad_input_is_rejected():
  x = np.zeros((8, 8, 3), np.float32)
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(x, x)
  with pytest.raises(ValueError, match="same shape"):
    metrics.psnr(np.zeros((16, 16, 3), np.float32), np.zeros((16, 17, 3), np.float32))
  with pytest.raises(ValueError, match="float images"):
    metrics.psnr(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8))


def test_quantize_rounds_to_8_bit_levels():
  x = np.array([-0.5, 0.0, 0.5 / 255.0 + 1e-4, 0.3, 1.7], np.float32)
  q = np.asarray(metrics.quantize(x))
  np.testing.assert_allclose(q * 255.0, np.round(q * 255.0), atol=1e-4)
  np.testing.assert_allclose(q, [0.0, 0.0, 1 / 255.0, round(0.3 * 255) / 255.0, 1.0], atol=1e-6)
