"""The published networks the paper fine-tunes, as Flax modules: `create(name, **kwargs)`.

Every model takes and returns images in `[0, 1]`. Deblurring networks map a clip window
`[B, n, H, W, 3]` (`n = module.num_input_frames`) to its restored middle frame `[B, H, W, 3]`;
FlowNetS maps two frames `[B, H, W, 3]` to a flow `[B, H, W, 2]` in pixels. `convert.py` imports
the authors' released weights.
"""

from __future__ import annotations

import flax.linen as nn

from reblur_jax.models.deblurgan import DeblurGAN
from reblur_jax.models.dvd import DVD
from reblur_jax.models.flownet import FlowNetS

MODELS = {"dvd": DVD, "deblurgan": DeblurGAN, "flownets": FlowNetS}


def create(name: str, **kwargs) -> nn.Module:
  """The model called `name` ("dvd", "deblurgan", "flownets"), built with its `kwargs`.

  Common kwarg: `width` (channel multiplier, 1.0 = the original). DVD: `frames` (5 or 1).
  DeblurGAN: `dropout_rate` (0.0).
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}.")
  return MODELS[name](**kwargs)
