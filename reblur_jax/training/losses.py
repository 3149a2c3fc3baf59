"""Losses of the three training tasks, per device, on float clips in [0, 1].

* Supervised deblurring, `L_S`: MSE between the restored middle frame and the sharp one.
* Self-supervised reblurring, `L_U` (paper Sec. 3): deblur frames t-1, t, t+1, estimate the flows
  between the restored frames with FlowNetS, blur the restored middle frame with the physics
  model, and take the MSE against the observed blurry middle frame. With `flow_source="tvl1"`
  the flows are fixed, estimated on the blurry frames (`reblur_jax.data.estimated_flows`), and
  only the middle frame is restored.
* Flow pre-training: FlowNet's multi-scale endpoint error on ground-truth flow.

Clips are `[B, T, H, W, 3]` with the frame to restore at `T // 2`; a deblur network that reads
`n` frames sees the `n`-frame window centred on the frame it restores, so the unlabeled term
needs `T = n + 2` (one extra frame each side).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from reblur_jax import blur
from reblur_jax import metrics
from reblur_jax.training import state

PyTree = Any

# Where `L_U` is measured (`config.reblur_mask`): the pixels where the blur model can hold.
REBLUR_MASKS = {
    "none": "every pixel (the paper)",
    "inside": "pixels whose blur segments stay inside the crop (`blur.segments_inside`)",
    "smooth_motion": "pixels away from motion boundaries of the flows (`blur.smooth_motion`)",
}


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """What the jitted losses read of a run's config, fixed once per run (hashable, static).

  Attributes:
    alpha: weight of `L_U` in `L = L_S + alpha * L_U`.
    train_mode: apply d in training mode (batch statistics, dropout).
    frames: restored frames the blur model uses, 3 (t-1, t, t+1) or 2 (t, t+1).
    tau: exposure fraction of each flow a blur segment spans (`blur.exposure_tau`).
    blur_model: "conv" (the paper's kernel table) or "warp".
    max_disp: flow range of the conv kernel table, pixels.
    blur_samples: warps per segment of the warp model.
    stop_flow_gradient: treat the flows as constants in `L_U` (config.flow_gradient == "stop").
    flow_source: "flownets" (FlowNetS on the restored frames) or "tvl1" (fixed flows that come
      with the unlabeled clips).
    reblur_mask: where `L_U` is measured, one of `REBLUR_MASKS`.
    linear_light: the blur model blurs in linear light (`blur.reblur`), as a camera integrates.
  """
  alpha: float
  train_mode: bool
  frames: int
  tau: float
  blur_model: str
  max_disp: int
  blur_samples: int
  stop_flow_gradient: bool
  flow_source: str = "flownets"
  reblur_mask: str = "none"
  linear_light: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> LossSettings:
    return cls(alpha=config.alpha, train_mode=config.train_mode, frames=config.frames,
               tau=config.tau, blur_model=config.blur_model, max_disp=config.max_disp,
               blur_samples=config.blur_samples,
               stop_flow_gradient=config.flow_gradient == "stop",
               flow_source=state.flow_source(config),
               reblur_mask=config.get("reblur_mask", "none"),
               linear_light=config.get("reblur_linear_light", False))

  def offsets(self) -> tuple[int, ...]:
    """Frames of an unlabeled clip d restores for `L_U`, relative to its middle."""
    return reblur_offsets(self.frames) if self.flow_source == "flownets" else (0,)

  def reblur_kwargs(self) -> dict[str, Any]:
    """The blur-model arguments of `reblur_loss`."""
    return dict(frames=self.frames, tau=self.tau, method=self.blur_model,
                max_disp=self.max_disp, samples=self.blur_samples,
                stop_flow_gradient=self.stop_flow_gradient,
                mask=self.reblur_mask, linear_light=self.linear_light)


def mse(x: jax.Array, y: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean squared error over all elements (a scalar).

  `mask`: 0/1 weights broadcastable to `x` (e.g. `[B, H, W, 1]` per pixel); the mean is then over
  the elements it keeps, and 0 where it keeps none.
  """
  if mask is None:
    return jnp.mean(jnp.square(x - y))
  mask = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
  return jnp.sum(mask * jnp.square(x - y)) / jnp.maximum(jnp.sum(mask), 1)


def windows(clips: jax.Array, num_frames: int, offsets: tuple[int, ...]) -> jax.Array:
  """The `num_frames` windows centred on frames `T // 2 + offset`, stacked along the batch.

  Args:
    clips: `[B, T, H, W, C]`.
    num_frames: n, the deblur network's input length (odd).
    offsets: centres relative to the middle frame, e.g. (-1, 0, 1).

  Returns:
    `[len(offsets) * B, n, H, W, C]`, offset-major (all clips' first window, then the second...).
  """
  length = clips.shape[1]
  middle = length // 2
  starts = [middle + offset - num_frames // 2 for offset in offsets]
  if min(starts) < 0 or max(starts) + num_frames > length:
    raise ValueError(
        f"clips of {length} frames are too short for {num_frames}-frame windows centred at "
        f"offsets {offsets} from the middle frame; the data pipeline must provide "
        f"{num_frames + 2 * max(abs(o) for o in offsets)} frames per clip.")
  return jnp.concatenate([clips[:, s:s + num_frames] for s in starts], axis=0)


def reblur_offsets(frames: int) -> tuple[int, ...]:
  """Frames restored for the reblur loss: (t-1, t, t+1) for `frames=3`, (t, t+1) for 2."""
  if frames not in (2, 3):
    raise ValueError(f"config.frames must be 2 or 3 (frames the blur model uses), got {frames}.")
  return (-1, 0, 1) if frames == 3 else (0, 1)


def reblur_loss(restored: jax.Array, blurry_middle: jax.Array, flows, *, frames: int,
                tau: float, method: str, max_disp: int, samples: int,
                stop_flow_gradient: bool = False, mask: str = "none",
                linear_light: bool = False):
  """The self-supervised term `L_U` from restored frames.

  Args:
    restored: `[k, B, H, W, 3]` restored frames at `reblur_offsets(frames)` (k = frames) when
      `flows` is a flow network; `[1, B, H, W, 3]`, the middle frames, with fixed flows.
    blurry_middle: `[B, H, W, 3]` the observed blurry middle frames.
    flows: the flow network `(first [N, H, W, 3], second [N, H, W, 3]) -> flow [N, H, W, 2]` in
      pixels, on the first image's grid (FlowNetS at full resolution), applied to the restored
      frames; or fixed flows `(flow_prev, flow_next)`, each `[B, H, W, 2]` (flow_prev is not
      read when `frames` is 2).
    frames, tau, method, max_disp, samples, linear_light: the blur model
      (`reblur_jax.blur.reblur`).
    stop_flow_gradient: treat the flows as constants. Through FlowNetS, d can lower `L_U` by
      changing what the flow network sees instead of by sharpening (docs/signal_diagnostic.md:
      the lowest reblur loss and the smallest gain); stopped, only the sharp frame is pulled.
    mask: the pixels the squared error is averaged over, one of `REBLUR_MASKS`; a batch with
      none gives 0.

  Returns:
    `(loss, reblurred [B, H, W, 3])`.
  """
  if not callable(flows):
    (middle,), (flow_prev, flow_next) = restored, flows
    flow_prev = flow_prev if frames == 3 else None
  elif frames == 3:
    previous, middle, following = restored
    # One flow-network call for both pairs: (t+1, t) gives flow_next, (t-1, t) flow_prev.
    both = flows(jnp.concatenate([following, previous]), jnp.concatenate([middle, middle]))
    flow_next, flow_prev = jnp.split(both, 2)
  else:
    middle, following = restored
    flow_next, flow_prev = flows(following, middle), None
  if stop_flow_gradient:
    flow_next, flow_prev = jax.lax.stop_gradient((flow_next, flow_prev))
  reblurred = blur.reblur_batch(middle, flow_prev, flow_next, tau=tau, method=method,
                                max_disp=max_disp, samples=samples, linear_light=linear_light)
  return mse(reblurred, blurry_middle, reblur_mask(mask, flow_prev, flow_next, tau)), reblurred


def reblur_mask(mask: str, flow_prev, flow_next, tau: float) -> jax.Array | None:
  """`REBLUR_MASKS[mask]` of flows `[B, H, W, 2]` (pixels) as `[B, H, W, 1]` boolean weights,
  None for every pixel."""
  if mask not in REBLUR_MASKS:
    raise ValueError(f"reblur mask {mask!r}: expected one of {tuple(REBLUR_MASKS)}.")
  if mask == "none":
    return None
  if mask == "inside":
    return blur.segments_inside(flow_prev, flow_next, tau=tau)[..., None]
  return blur.smooth_motion(flow_prev, flow_next)[..., None]


def adaptive_average(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Area-averages `[B, H, W, C]` to `[B, h, w, C]` like torch's `adaptive_avg_pool2d`.

  Output cell i averages input rows floor(i H / h) .. ceil((i + 1) H / h) - 1 (likewise columns),
  so the bins tile the image even when h does not divide H.
  """
  def pooling(n_in, n_out):
    i = np.arange(n_out)[:, None]
    j = np.arange(n_in)[None, :]
    inside = (j >= (i * n_in) // n_out) & (j < -((-(i + 1) * n_in) // n_out))
    return jnp.asarray(inside / inside.sum(axis=1, keepdims=True), x.dtype)
  return jnp.einsum("ih,jw,bhwc->bijc", pooling(x.shape[1], size[0]), pooling(x.shape[2], size[1]),
                    x)


def multiscale_epe(predictions: tuple[jax.Array, ...], target: jax.Array, *,
                   weights: tuple[float, ...], div_flow: float) -> jax.Array:
  """FlowNet's training loss: weighted sum over scales of the per-example summed endpoint error.

  Args:
    predictions: `(flow2, ..., flow6)`, each `[B, h_k, w_k, 2]`, in full-resolution pixels /
      `div_flow` (FlowNetPytorch's units).
    target: `[B, H, W, 2]` ground-truth flow in pixels.
    weights: one weight per scale (FlowNetS: 0.005, 0.01, 0.02, 0.08, 0.32).
    div_flow: FlowNet's flow scale, 20.

  Returns:
    Scalar: sum_k weights[k] * (summed EPE at scale k, averaged over the batch), with the target
    area-averaged to each scale and divided by `div_flow`, as FlowNetPytorch's `multiscaleEPE`.
  """
  if len(predictions) != len(weights):
    raise ValueError(f"{len(predictions)} flow scales but {len(weights)} weights.")
  scaled = target / div_flow
  total = 0.0
  for weight, flow in zip(weights, predictions):
    epe = jnp.linalg.norm(flow - adaptive_average(scaled, flow.shape[1:3]), axis=-1)
    total += weight * jnp.mean(jnp.sum(epe, axis=(1, 2)))
  return total


def endpoint_error(flow: jax.Array, target: jax.Array) -> jax.Array:
  """Mean endpoint error in pixels of `[..., H, W, 2]` flows (a scalar)."""
  return jnp.mean(jnp.linalg.norm(flow - target, axis=-1))


def clipped_mean_psnr(x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean PSNR in dB of `[B, H, W, 3]` images, `x` clamped to [0, 1] first (a scalar; the
  training metrics. `metrics.psnr` is the per-image PSNR, unclamped)."""
  return jnp.mean(metrics.psnr(jnp.clip(x, 0.0, 1.0), y))
