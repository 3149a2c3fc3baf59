"""DVD: the video deblurring network of Su et al., CVPR 2017, layer for layer.

The original is `models/model2_symskip_nngraph2_deeper.lua` in shuochsu/DeepVideoDeblurring
(Torch7): an encoder-decoder whose every convolution is followed by batch norm (eps 1e-3) and
ReLU, with three additive skips (added after the up-convolution's batch norm, before its ReLU)
and the output `sigmoid(centre frame + residual)`. Its input is 5 frames stacked on channels
(t-2, ..., t+2, RGB each, values /255); the 1-frame mode (`frames=1`) is the same network on
one frame, its first and last convolutions sized for 3 channels instead of 15.

`head="identity"` is the one deviation, for training from scratch: the output is
`sigmoid(logit(centre) + residual)` and the last batch norm's scale starts at zero, so the network
starts as the identity and learns only the correction. The original head has to learn
`logit(x) - x` before it can reproduce its input: from scratch, a thin DVD spent its first
thousands of steps on that and scored below its blurry input (docs/baselines.md). Both heads have
the same parameters; imported weights need `head="original"`.

Batch-norm statistics live in the `batch_stats` collection. `train=False` (the default, and how
the paper fine-tunes) normalises with them; `train=True` uses the batch's statistics and updates
them, so apply it with `mutable=["batch_stats"]`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from reblur_jax.models import layers

# The original's layers in the order of its graph, which is the order of its flat Torch7
# parameter vector (every layer with parameters lies on the one path from input to output).
LAYERS = ("F0", "D1", "F1", "F2", "D2", "F3", "F4", "F5", "D3", "F6", "F7", "F8",
          "U1", "F9", "F10", "F11", "U2", "F12", "F13", "U3", "F14", "F15")
BN_EPSILON = 1e-3
# Torch's batch norm updates running statistics with weight 0.1 for the new batch.
BN_MOMENTUM = 0.9
SIZE_MULTIPLE = 8  # Three stride-2 stages; the original zero-pads frames at the bottom/right.
HEADS = ("original", "identity")
# `logit` of the centre frame is taken on [EPS, 1 - EPS]: finite, and within 1/4 of an 8-bit level.
EPS = 1e-3


class ConvBN(nn.Module):
  """Convolution (or 4x4 stride-2 up-convolution), batch norm, optional skip, optional ReLU."""
  features: int
  kernel: int = 3
  stride: int = 1
  transpose: bool = False
  relu: bool = True
  zero_scale: bool = False  # Batch norm's scale starts at 0: the layer outputs its bias.
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool, skip: jax.Array | None = None) -> jax.Array:
    if self.transpose:
      x = layers.conv_transpose(self.features, self.kernel, self.stride, 1, dtype=self.dtype,
                                name="conv")(x)
    else:
      x = layers.conv(self.features, self.kernel, self.stride, dtype=self.dtype, name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                     scale_init=nn.initializers.zeros if self.zero_scale else nn.initializers.ones,
                     dtype=self.dtype, name="bn")(x)
    if skip is not None:
      x = x + skip
    return nn.relu(x) if self.relu else x


class DVD(nn.Module):
  """Restores the middle frame of a clip window.

  Attributes:
    frames: input frames, 5 (the original) or 1 (each frame deblurred on its own).
    width: channel multiplier of the inner layers; 1.0 is the original (15,305,291 parameters).
    head: "original", `sigmoid(centre + residual)`, or "identity", `sigmoid(logit(centre) +
      residual)` with the residual zero at initialisation (for training from scratch).
    dtype: compute dtype of the layers (None: that of the input; jnp.bfloat16 for mixed
      precision); the parameters stay float32 and the output has the input's dtype.
  """
  frames: int = 5
  width: float = 1.0
  head: str = "original"
  dtype: jnp.dtype | None = None

  def __post_init__(self):
    if self.frames not in (1, 5):
      raise ValueError(f"DVD frames must be 5 (the original) or 1, got {self.frames}.")
    if self.head not in HEADS:
      raise ValueError(f"DVD head must be one of {HEADS}, got {self.head!r}.")
    super().__post_init__()

  @property
  def num_input_frames(self) -> int:
    return self.frames

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """`x`: `[B, frames, H, W, 3]` in `[0, 1]` -> the restored middle frame `[B, H, W, 3]`."""
    layers.check_clip(x, self.frames, "DVD")
    batch, frames, height, width, _ = x.shape
    # Frames t-2..t+2 side by side on channels, each RGB, as the original stacks them.
    stack = jnp.moveaxis(x, 1, 3).reshape(batch, height, width, 3 * frames)
    stack = layers.pad_to_multiple(stack, SIZE_MULTIPLE, "constant")
    centre = stack[..., 3 * (frames // 2):3 * (frames // 2) + 3]

    c = lambda channels: layers.scaled(channels, self.width)
    conv_bn = functools.partial(ConvBN, dtype=self.dtype)
    f0 = conv_bn(c(64), 5, name="F0")(stack, train)
    y = conv_bn(c(64), stride=2, name="D1")(f0, train)
    y = conv_bn(c(128), name="F1")(y, train)
    f2 = conv_bn(c(128), name="F2")(y, train)
    y = conv_bn(c(256), stride=2, name="D2")(f2, train)
    y = conv_bn(c(256), name="F3")(y, train)
    y = conv_bn(c(256), name="F4")(y, train)
    f5 = conv_bn(c(256), name="F5")(y, train)
    y = conv_bn(c(512), stride=2, name="D3")(f5, train)
    for name in ("F6", "F7", "F8"):
      y = conv_bn(c(512), name=name)(y, train)
    y = conv_bn(c(256), 4, 2, transpose=True, name="U1")(y, train, skip=f5)
    for name in ("F9", "F10", "F11"):
      y = conv_bn(c(256), name=name)(y, train)
    y = conv_bn(c(128), 4, 2, transpose=True, name="U2")(y, train, skip=f2)
    y = conv_bn(c(128), name="F12")(y, train)
    y = conv_bn(c(64), name="F13")(y, train)
    y = conv_bn(c(64), 4, 2, transpose=True, name="U3")(y, train, skip=f0)
    y = conv_bn(3 * frames, name="F14")(y, train)
    identity = self.head == "identity"
    residual = conv_bn(3, relu=False, zero_scale=identity, name="F15")(y, train)
    if identity:
      centre = jax.scipy.special.logit(jnp.clip(centre, EPS, 1.0 - EPS))
    return nn.sigmoid(centre + residual.astype(x.dtype))[:, :height, :width]
