"""FlowNetS (Dosovitskiy et al., ICCV 2015), layer for layer as in ClementPinard/FlowNetPytorch.

The original is `FlowNetS(batchNorm=False)` in `models/FlowNetS.py` and `models/util.py`: ten
convolutions with biases and leaky ReLU 0.1 (conv1 .. conv6_1), then four refinement stages, each
concatenating the encoder's skip, a 4x4 stride-2 deconvolution of the previous stage and the
upsampled previous flow, and predicting a flow with a 3x3 convolution (no biases in the decoder).
Its input is both images stacked on channels, each in `[0, 1]` minus `MEAN_RGB`.

Units and direction. The original trains every scale against the ground truth area-downsampled to
that scale and divided by `DIV_FLOW`, without rescaling the vectors: flow2 .. flow6 are in
full-resolution pixels / 20. At inference it upsamples flow2 bilinearly to full size and multiplies
by 20. The flow lives on the first image's grid, `first(p) ~= second(p + flow(p))`, channel 0
along x (columns) and channel 1 along y (rows): the project's convention, so no conversion.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from reblur_jax.models import layers

DIV_FLOW = 20.0
MULTISCALE_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)  # flow2 .. flow6, as in the original.
# Subtracted from R, G, B: FlowNetPytorch trained its released weights on RGB images minus the
# Caffe FlowNet's BGR-ordered Flying Chairs mean (docs/models.md has the history).
MEAN_RGB = (0.411, 0.432, 0.45)
# Six stride-2 stages: inputs are padded up to a multiple of this. With zeros (after the mean):
# closest to the original's unpadded run of all extensions measured (docs/models.md).
SIZE_MULTIPLE = 64

# Encoder: (name, output channels at width 1, kernel, stride); outputs of conv2, conv3_1,
# conv4_1, conv5_1 feed the decoder.
ENCODER = (("conv1", 64, 7, 2), ("conv2", 128, 5, 2), ("conv3", 256, 5, 2),
           ("conv3_1", 256, 3, 1), ("conv4", 512, 3, 2), ("conv4_1", 512, 3, 1),
           ("conv5", 512, 3, 2), ("conv5_1", 512, 3, 1), ("conv6", 1024, 3, 2),
           ("conv6_1", 1024, 3, 1))
SKIPS = ("conv5_1", "conv4_1", "conv3_1", "conv2")
DECONV_CHANNELS = (512, 256, 128, 64)  # deconv5 .. deconv2 at width 1.


def leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.1)


class FlowNetS(nn.Module):
  """Optical flow from `first` to `second`.

  Attributes:
    width: channel multiplier; 1.0 is the original (38,675,536 parameters).
    dtype: compute dtype of the layers (None: that of the input; jnp.bfloat16 for mixed
      precision); the parameters stay float32 and the output has the input's dtype.
  """
  width: float = 1.0
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, first: jax.Array, second: jax.Array, multiscale: bool = False):
    """Flow of the image pair.

    Args:
      first: `[B, H, W, 3]` in `[0, 1]`; the flow lives on its grid.
      second: `[B, H, W, 3]` in `[0, 1]`.
      multiscale: return the original's training outputs instead of the flow in pixels.

    Returns:
      `[B, H, W, 2]` flow in pixels with `first(p) ~= second(p + flow(p))`; or with `multiscale`
      the tuple `(flow2, flow3, flow4, flow5, flow6)`, flowK `[B, ceil(H/2^K), ceil(W/2^K), 2]` in
      full-resolution pixels / `DIV_FLOW`.
    """
    if first.ndim != 4 or first.shape[-1] != 3 or first.shape != second.shape:
      raise ValueError(
          "FlowNetS takes first and second shaped [B, H, W, 3] alike, got "
          f"{first.shape} and {second.shape}.")
    height, width = first.shape[1:3]
    mean = jnp.asarray(MEAN_RGB, first.dtype)
    x = jnp.concatenate([first - mean, second - mean], axis=-1)
    x = layers.pad_to_multiple(x, SIZE_MULTIPLE, "constant")
    flows = tuple(f.astype(first.dtype) for f in self._pyramid(x))
    if multiscale:
      return tuple(f[:, :-(-height // 2**k), :-(-width // 2**k)]
                   for k, f in enumerate(flows, start=2))
    # Bilinear with half-pixel centres, as torch's interpolate(align_corners=False) upsamples.
    full = jax.image.resize(flows[0], x.shape[:3] + (2,), "bilinear")
    return DIV_FLOW * full[:, :height, :width]

  def _pyramid(self, x: jax.Array) -> tuple[jax.Array, ...]:
    """Padded `[B, H, W, 6]` -> `(flow2, ..., flow6)` at 1/4 .. 1/64 resolution."""
    c = lambda channels: layers.scaled(channels, self.width)
    skips = {}
    for name, channels, kernel, stride in ENCODER:
      x = leaky_relu(layers.conv(c(channels), kernel, stride, dtype=self.dtype, name=name)(x))
      skips[name] = x
    flow = layers.conv(2, 3, use_bias=False, dtype=self.dtype, name="predict_flow6")(x)
    flows = [flow]
    for level, skip, channels in zip((5, 4, 3, 2), SKIPS, DECONV_CHANNELS):
      up_flow = layers.conv_transpose(2, 4, 2, 1, use_bias=False, dtype=self.dtype,
                                      name=f"upsampled_flow{level + 1}_to_{level}")(flow)
      up = leaky_relu(layers.conv_transpose(c(channels), 4, 2, 1, use_bias=False,
                                            dtype=self.dtype, name=f"deconv{level}")(x))
      x = jnp.concatenate([skips[skip], up, up_flow], axis=-1)
      flow = layers.conv(2, 3, use_bias=False, dtype=self.dtype, name=f"predict_flow{level}")(x)
      flows.insert(0, flow)
    return tuple(flows)
