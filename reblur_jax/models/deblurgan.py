"""The DeblurGAN generator of Kupyn et al., CVPR 2018, layer for layer.

The original is `ResnetGenerator` in KupynOrest/DeblurGAN `models/networks.py` as configured for
the released weights (resnet_9blocks, ngf 64, instance norm without affine parameters, convolutions
with biases, reflection padding, `learn_residual`): a 7x7 convolution, two stride-2 convolutions,
nine residual blocks, two stride-2 transposed convolutions, a 7x7 convolution and tanh, added to
the input and clamped to `[-1, 1]`. Instance norm always uses the image's own statistics (the
original's test path does too); the blocks' dropout (0.5 in the released model, kept on at test
time by the original) is an explicit option here, off by default.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from reblur_jax.models import layers

NUM_BLOCKS = 9
SIZE_MULTIPLE = 4  # Two stride-2 stages; frames are reflect-padded up to a multiple of this.


def instance_norm(x: jax.Array) -> jax.Array:
  """PyTorch's `InstanceNorm2d(affine=False, eps=1e-5)` on `[B, H, W, C]`; statistics in float32,
  output in `x`'s dtype."""
  return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False,
                         use_fast_variance=False, dtype=x.dtype)(x)


def reflect_pad(x: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


class ResnetBlock(nn.Module):
  """`x + IN(conv(pad(drop(relu(IN(conv(pad(x))))))))`, no activation after the sum."""
  dropout_rate: float = 0.0
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    features = x.shape[-1]
    y = layers.conv(features, 3, padding=0, dtype=self.dtype, name="conv1")(reflect_pad(x, 1))
    y = nn.relu(instance_norm(y))
    if self.dropout_rate > 0:
      y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = layers.conv(features, 3, padding=0, dtype=self.dtype, name="conv2")(reflect_pad(y, 1))
    return x + instance_norm(y)


class DeblurGAN(nn.Module):
  """Restores a frame; takes a one-frame clip window so it fits where a video network does.

  Attributes:
    width: channel multiplier; 1.0 is the original (ngf 64, 11,378,179 parameters).
    dropout_rate: dropout inside each residual block when `train=True` (the original trained
      with 0.5); needs `rngs={"dropout": key}` then.
    dtype: compute dtype of the layers (None: that of the input; jnp.bfloat16 for mixed
      precision); the parameters stay float32 and the output has the input's dtype.
  """
  width: float = 1.0
  dropout_rate: float = 0.0
  dtype: jnp.dtype | None = None
  num_input_frames: ClassVar[int] = 1

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """`x`: `[B, 1, H, W, 3]` in `[0, 1]` -> the restored frame `[B, H, W, 3]`."""
    layers.check_clip(x, self.num_input_frames, "DeblurGAN")
    height, width = x.shape[2:4]
    image = layers.pad_to_multiple(2.0 * x[:, 0] - 1.0, SIZE_MULTIPLE, "reflect")
    ngf = layers.scaled(64, self.width)

    y = layers.conv(ngf, 7, padding=0, dtype=self.dtype, name="conv_in")(reflect_pad(image, 3))
    y = nn.relu(instance_norm(y))
    for i, features in enumerate((2 * ngf, 4 * ngf), start=1):
      y = nn.relu(instance_norm(layers.conv(features, 3, 2, dtype=self.dtype, name=f"down{i}")(y)))
    for i in range(NUM_BLOCKS):
      y = ResnetBlock(self.dropout_rate, self.dtype, name=f"block{i}")(y, train)
    for i, features in enumerate((2 * ngf, ngf), start=1):
      y = layers.conv_transpose(features, 3, 2, 1, output_padding=1, dtype=self.dtype,
                                name=f"up{i}")(y)
      y = nn.relu(instance_norm(y))
    y = layers.conv(3, 7, padding=0, dtype=self.dtype, name="conv_out")(reflect_pad(y, 3))
    y = jnp.tanh(y.astype(image.dtype))
    restored = jnp.clip(image + y, -1.0, 1.0)[:, :height, :width]
    return (restored + 1.0) / 2.0
