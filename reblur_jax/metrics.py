"""Image quality metrics, as the conventions define them.

PSNR and SSIM on RGB images in `[0, 1]` with data range 1. SSIM uses an 11x11 Gaussian window
(sigma 1.5), K1 0.01, K2 0.03, population covariance, averaged over channels and the valid region:
the same numbers as `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1.0, channel_axis=-1)`. Both are jit-able and accept any
number of leading batch axes.
"""

from __future__ import annotations

import dm_pix
import jax
import jax.numpy as jnp

SSIM_WINDOW = 11  # dm-pix's 'valid' filtering needs at least this many pixels per side.


def _flatten_batch(x: jax.Array) -> jax.Array:
  """`[..., H, W, C]` -> `[N, H, W, C]` (the rank dm-pix accepts)."""
  if x.ndim < 3:
    raise ValueError(f"expected images shaped [..., H, W, C], got shape {x.shape}.")
  return x.reshape((-1,) + x.shape[-3:])


def _check_pair(x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
  x, y = jnp.asarray(x), jnp.asarray(y)
  if x.shape != y.shape:
    raise ValueError(f"images must have the same shape, got {x.shape} and {y.shape}.")
  if not (jnp.issubdtype(x.dtype, jnp.floating) and jnp.issubdtype(y.dtype, jnp.floating)):
    raise ValueError(
        f"metrics take float images in [0, 1], got {x.dtype} and {y.dtype}; "
        "convert uint8 images with `x / 255.0`.")
  return x, y


def psnr(x: jax.Array, y: jax.Array) -> jax.Array:
  """Peak signal-to-noise ratio in dB of `[..., H, W, C]` images in `[0, 1]`; returns `[...]`."""
  x, y = _check_pair(x, y)
  mse = jnp.mean(jnp.square(x - y), axis=(-3, -2, -1))
  return -10.0 * jnp.log10(mse)


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
  """Structural similarity of `[..., H, W, C]` images in `[0, 1]`; returns `[...]`.

  Raises ValueError for images smaller than the 11x11 window, where dm-pix returns garbage.
  """
  x, y = _check_pair(x, y)
  if min(x.shape[-3:-1]) < SSIM_WINDOW:
    raise ValueError(
        f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got "
        f"{x.shape[-3]}x{x.shape[-2]}.")
  values = dm_pix.ssim(_flatten_batch(x), _flatten_batch(y))
  return values.reshape(x.shape[:-3])


def quantize(x: jax.Array) -> jax.Array:
  """Clamps to `[0, 1]` and rounds to 8-bit levels, as a saved image would be (float out)."""
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0) / 255.0
