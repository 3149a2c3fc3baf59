"""Pieces the three ported networks share: PyTorch-style convolutions, width scaling, padding.

PyTorch and Flax disagree on two things that matter for a layer-for-layer port: Flax's "SAME"
padding is asymmetric for strided convolutions (PyTorch pads `p` on both sides), and PyTorch's
`ConvTranspose2d(k, s, p, output_padding=op)` is a correlation of the zero-dilated input, padded
by `(k - 1 - p, k - 1 - p + op)`, with the spatially flipped kernel. The layers below take the
original's arguments and compute the same function; their kernel layouts are those `convert.py`
maps PyTorch tensors onto (`[kh, kw, in, out]` for a convolution, `[kh, kw, out, in]` for a
transposed one).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


def scaled(channels: int, width: float) -> int:
  """The channel count of a layer with `channels` in the original, in a network `width` wide."""
  if not width > 0:
    raise ValueError(f"width must be a positive multiplier (1.0 = the original), got {width}.")
  return max(1, round(channels * width))


# Below this many output channels a stride-1 convolution is one matmul to every tap's outputs
# and a shifted sum (`_few_outputs_conv`): XLA:CPU's convolution is >10x slower there (DeblurGAN's
# last 7x7 layer, 64 -> 3 channels: 3.0 s vs 0.26 s forward on 10x128x128, 2 cores).
FEW_OUTPUTS = 4


def _im2col(x: jax.Array, kernel: int, stride: int) -> jax.Array:
  """`[B, H, W, C]` (padded) -> `[B, Ho, Wo, k, k, C]`, the taps every output reads."""
  out = [(n - kernel) // stride + 1 for n in x.shape[1:3]]
  rows = [jnp.stack([x[:, i:i + stride * (out[0] - 1) + 1:stride,
                       j:j + stride * (out[1] - 1) + 1:stride] for j in range(kernel)], 3)
          for i in range(kernel)]
  return jnp.stack(rows, 3)


def _lax_conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int = 0) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), [(padding, padding)] * 2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.custom_vjp
def _few_outputs_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Stride-1 valid correlation as `z = x @ kernel[taps]`, then `y = sum of shifted z[tap]`."""
  k, _, channels, features = kernel.shape
  out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
  z = x @ jnp.moveaxis(kernel, 2, 0).reshape(channels, k * k * features)
  z = z.reshape(x.shape[:3] + (k, k, features))
  return sum(z[:, i:i + out_h, j:j + out_w, i, j] for i in range(k) for j in range(k))


def _few_outputs_fwd(x, kernel):
  return _few_outputs_conv(x, kernel), (x, kernel)


def _few_outputs_bwd(residuals, dy):
  # Autodiff of the shifted sum would add k*k padded copies of z's size; the same cotangent is
  # one stack of padded dy, and both gradients are then matmuls.
  x, kernel = residuals
  k, _, channels, features = kernel.shape
  dz = jnp.stack([jnp.stack([jnp.pad(dy, ((0, 0), (i, k - 1 - i), (j, k - 1 - j), (0, 0)))
                             for j in range(k)], 3) for i in range(k)], 3)
  dz = dz.reshape(-1, k * k * features)
  matrix = jnp.moveaxis(kernel, 2, 0).reshape(channels, k * k * features)
  dx = (dz @ matrix.T).reshape(x.shape)
  dkernel = (x.reshape(-1, channels).T @ dz).reshape(channels, k, k, features)
  return dx, jnp.moveaxis(dkernel, 0, 2)


_few_outputs_conv.defvjp(_few_outputs_fwd, _few_outputs_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _strided_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  return _lax_conv(x, kernel, stride)


def _strided_fwd(x, kernel, stride):
  return _lax_conv(x, kernel, stride), (x, kernel)


def _strided_bwd(stride, residuals, dy):
  # XLA:CPU's kernel gradient of a strided convolution is ~4x slower than PyTorch's (64 -> 128
  # channels 3x3 stride 2 on 10x128x128: 1.9 s); as one matmul of the input's patches, it is not.
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: _lax_conv(x, kernel, stride), x)
  (dx,) = input_vjp(dy)
  patches = _im2col(x, kernel.shape[0], stride).reshape(-1, kernel[..., 0].size)
  dkernel = patches.T @ dy.reshape(-1, kernel.shape[-1])
  return dx, dkernel.reshape(kernel.shape)


_strided_conv.defvjp(_strided_fwd, _strided_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0) -> jax.Array:
  """`torch.nn.functional.conv2d` on `[B, H, W, C]` with an HWIO kernel, in the form XLA:CPU
  runs fastest for the layer's shape (the same numbers within float rounding)."""
  if stride == 1 and kernel.shape[-1] > FEW_OUTPUTS:
    return _lax_conv(x, kernel, stride, padding)
  x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  return _strided_conv(x, kernel, stride) if stride > 1 else _few_outputs_conv(x, kernel)


class Conv(nn.Module):
  """`torch.nn.Conv2d(in, features, kernel, stride, padding)`, parameters as `nn.Conv`'s.

  `dtype` is the compute dtype (None: that of the input and parameters), `param_dtype` the
  parameters' storage dtype.
  """
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  dtype: jnp.dtype | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel, self.kernel, x.shape[-1], self.features), self.param_dtype)
    bias = (self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv2d(x, kernel, self.stride, self.padding)
    return y if bias is None else y + bias


def conv(features: int, kernel: int, stride: int = 1, *, padding: int | None = None,
         use_bias: bool = True, dtype: jnp.dtype | None = None,
         name: str | None = None) -> Conv:
  """`torch.nn.Conv2d(in, features, kernel, stride, padding)`; padding defaults to `(k-1)//2`."""
  pad = (kernel - 1) // 2 if padding is None else padding
  return Conv(features, kernel, stride, pad, use_bias, dtype, name=name)


class ConvTranspose(nn.Module):
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding, output_padding)`.

  Output size `(n - 1) * stride - 2 * padding + kernel + output_padding`, as in PyTorch; kernel
  `[kh, kw, features, in]`. Computed as `stride**2` stride-1 convolutions of the undilated input,
  one per output phase, interleaved: the same numbers as `lax.conv_transpose`, a quarter of its
  multiplications (none by inserted zeros), and a kernel gradient XLA:CPU computes >100x faster
  than that of an input-dilated convolution (88 s -> 0.5 s for a 256 -> 256 channel 4x4 layer
  on 10x32x32 inputs, 2 CPU cores; PyTorch takes 0.7 s for forward and backward).
  """
  features: int
  kernel: int
  stride: int
  padding: int
  output_padding: int = 0
  use_bias: bool = True
  dtype: jnp.dtype | None = None  # Compute dtype, as `Conv`'s.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kernel < self.stride:
      raise ValueError(f"kernel ({self.kernel}) must be at least the stride ({self.stride}).")
    kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=-1, out_axis=-2),
                        (self.kernel, self.kernel, self.features, x.shape[-1]))
    bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    # The transposed convolution is a correlation of the zero-dilated input, padded by k-1-p,
    # with the flipped kernel; output phase r only meets the taps j = (k-1-p-r) mod s (mod s).
    flipped = jnp.swapaxes(kernel[::-1, ::-1], 2, 3)
    rows = [[self._phase(x, flipped, (r_h, r_w)) for r_w in range(self.stride)]
            for r_h in range(self.stride)]
    phases = jnp.stack([jnp.stack(row, axis=3) for row in rows], axis=2)  # [B,qh,s,qw,s,C]
    batch, q_h, _, q_w = phases.shape[:4]
    y = phases.reshape(batch, q_h * self.stride, q_w * self.stride, self.features)
    y = y[:, :self._out_size(x.shape[1]), :self._out_size(x.shape[2])]
    return y if bias is None else y + bias

  def _out_size(self, n: int) -> int:
    return (n - 1) * self.stride - 2 * self.padding + self.kernel + self.output_padding

  def _phase(self, x: jax.Array, flipped: jax.Array, phase: tuple[int, int]) -> jax.Array:
    """Outputs `stride * q + phase` for all q, `[B, ceil(out_h / s), ceil(out_w / s), C]`."""
    s, lo = self.stride, self.kernel - 1 - self.padding
    taps, pads = [], []
    for axis, r in enumerate(phase):
      first_tap = (lo - r) % s
      count = len(range(first_tap, self.kernel, s))
      pad_lo = (lo - r - first_tap) // s  # Output q reads input q - pad_lo + t, t < count.
      size = -(-self._out_size(x.shape[1 + axis]) // s)
      taps.append(slice(first_tap, None, s))
      pads.append((pad_lo, size - 1 - x.shape[1 + axis] - pad_lo + count))
    return jax.lax.conv_general_dilated(x, flipped[taps[0], taps[1]], (1, 1), pads,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_transpose(features: int, kernel: int, stride: int, padding: int, *,
                   output_padding: int = 0, use_bias: bool = True,
                   dtype: jnp.dtype | None = None, name: str | None = None) -> ConvTranspose:
  """`torch.nn.ConvTranspose2d(in, features, kernel, stride, padding, output_padding)`."""
  return ConvTranspose(features, kernel, stride, padding, output_padding, use_bias, dtype,
                       name=name)


def pad_to_multiple(x: jax.Array, multiple: int, mode: str) -> jax.Array:
  """Pads `[B, H, W, C]` at the bottom and right so that H and W are multiples of `multiple`.

  `mode` is a `jnp.pad` mode ("constant" for zeros, "edge", "reflect"). Crop the result of the
  network with `[:, :H, :W]` to undo it.
  """
  height, width = x.shape[1:3]
  pad_h, pad_w = -height % multiple, -width % multiple
  if not (pad_h or pad_w):
    return x
  return jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def check_clip(x: jax.Array, frames: int, model: str) -> None:
  """Raises ValueError unless `x` is a clip window `[B, frames, H, W, 3]`."""
  if x.ndim != 5 or x.shape[1] != frames or x.shape[-1] != 3:
    raise ValueError(
        f"{model} takes x shaped [B, {frames}, H, W, 3] ({frames} RGB frame(s) in [0, 1], the "
        f"one to restore in the middle), got shape {x.shape}.")
