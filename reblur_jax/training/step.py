"""Per-device train and eval steps, written pmap-style.

Each function sees its device's slice of the global batch (`"labeled"` and/or `"unlabeled"`
groups of clips `[b, T, H, W, 3]`, see `reblur_jax.data.pipeline`) and the whole replicated train
state, and averages what it returns over the `data` axis with `jax.lax.pmean`. They are run by
`sharding.data_parallel` (shard_map under jit); `train.create_run` fixes their static parts with
`functools.partial`: the networks and the run's `losses.LossSettings`.

Networks are a dict of flax modules keyed like the state's params: `"deblur"` (d) and `"flow"`
(f, FlowNetS). Metrics are scalars named `loss`, `loss_supervised`, `loss_reblur`, `psnr`, ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from reblur_jax import checkpoint
from reblur_jax import metrics as image_metrics
from reblur_jax.models import flownet
from reblur_jax.training import losses
from reblur_jax.training.sharding import DATA_AXIS
from reblur_jax.training.state import TrainState

PyTree = Any
Networks = Mapping[str, nn.Module]
LossFn = Callable[..., tuple[jax.Array, tuple[dict[str, jax.Array], PyTree]]]


# ----------------------------------------------------------------------------- applying networks


def apply_deblur(network: nn.Module, variables: PyTree, clips: jax.Array, *, train: bool,
           rng: jax.Array | None = None) -> tuple[jax.Array, PyTree | None]:
  """Applies d to windows `[B, n, H, W, 3]`; returns `([B, H, W, 3], updated batch_stats)`.

  `train=True` uses batch statistics (and updates the running ones) and dropout; the returned
  statistics are the input ones when nothing updates them.
  """
  rngs = {"dropout": rng} if rng is not None else {}
  if train and "batch_stats" in variables:
    restored, updates = network.apply(variables, clips, train=True, rngs=rngs,
                                      mutable=["batch_stats"])
    return restored, updates["batch_stats"]
  return network.apply(variables, clips, train=train, rngs=rngs), variables.get("batch_stats")


def _flow_fn(networks: Networks, params: PyTree):
  """FlowNetS as `(first, second) -> flow [N, H, W, 2]` in pixels on `first`'s grid."""
  return functools.partial(networks["flow"].apply, {"params": params["flow"]})


def _reblur_flows(networks: Networks, params: PyTree, clips: PyTree,
                  settings: losses.LossSettings):
  """What `losses.reblur_loss` estimates its flows with: FlowNetS, or the clips' fixed flows."""
  if settings.flow_source == "flownets":
    return _flow_fn(networks, params)
  return clips["estimated_flow_prev"], clips["estimated_flow_next"]


def _middle(clips: jax.Array) -> jax.Array:
  return clips[:, clips.shape[1] // 2]


# ----------------------------------------------------------------------------- losses per task


def deblur_loss(params: PyTree, batch_stats: PyTree, batch: PyTree, rng: jax.Array, *,
                networks: Networks, settings: losses.LossSettings):
  """`L = L_S + alpha * L_U` on one device's labeled and unlabeled clips.

  One call of d restores the labeled middle frames and, for each unlabeled clip, the frames the
  blur model needs, so batch statistics (when trained) cover the whole device batch.

  Returns:
    `(loss, (metrics, batch_stats))`.
  """
  network = networks["deblur"]
  frames = network.num_input_frames
  offsets = settings.offsets()
  parts = []
  if "labeled" in batch:
    parts.append(losses.windows(batch["labeled"]["blurry"], frames, (0,)))
  if "unlabeled" in batch:
    parts.append(losses.windows(batch["unlabeled"]["blurry"], frames, offsets))
  variables = checkpoint.network_variables(params, batch_stats, "deblur")
  restored, new_stats = apply_deblur(network, variables, jnp.concatenate(parts),
                                     train=settings.train_mode, rng=rng)

  metrics, loss = {}, 0.0
  if "labeled" in batch:
    sharp = _middle(batch["labeled"]["sharp"])
    labeled, restored = jnp.split(restored, [sharp.shape[0]])
    metrics["loss_supervised"] = losses.mse(labeled, sharp)
    metrics["psnr"] = losses.clipped_mean_psnr(labeled, sharp)
    loss += metrics["loss_supervised"]
  if "unlabeled" in batch:
    blurry = _middle(batch["unlabeled"]["blurry"])
    per_offset = restored.reshape(len(offsets), *blurry.shape)
    metrics["loss_reblur"], reblurred = losses.reblur_loss(
        per_offset, blurry, _reblur_flows(networks, params, batch["unlabeled"], settings),
        **settings.reblur_kwargs())
    metrics["psnr_reblur"] = losses.clipped_mean_psnr(reblurred, blurry)
    loss += settings.alpha * metrics["loss_reblur"]
  metrics["loss"] = loss
  batch_stats = {**batch_stats, "deblur": new_stats} if new_stats is not None else batch_stats
  return loss, (metrics, batch_stats)


def flow_loss(params: PyTree, batch_stats: PyTree, batch: PyTree, rng: jax.Array, *,
              networks: Networks, settings: losses.LossSettings):
  """FlowNet's multi-scale EPE on the pairs (t+1, t) and (t-1, t) of labeled sharp clips.

  The clips must carry ground-truth `flow_next` / `flow_prev` `[b, T, H, W, 2]` (synthetic data).
  """
  del rng, settings
  network = networks["flow"]
  first, second, target = _flow_pairs(batch["labeled"])
  variables = checkpoint.network_variables(params, batch_stats, "flow")
  predictions = network.apply(variables, first, second, multiscale=True)
  loss = losses.multiscale_epe(predictions, target, weights=flownet.MULTISCALE_WEIGHTS,
                               div_flow=flownet.DIV_FLOW)
  # FlowNet's "real EPE": flow2 upsampled to full resolution, in pixels.
  full = jax.image.resize(predictions[0], target.shape, "bilinear") * flownet.DIV_FLOW
  return loss, ({"loss": loss, "epe": losses.endpoint_error(full, target)}, batch_stats)


def _flow_pairs(clips: PyTree) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(first, second, flow)`, each `[2b, ...]`: sharp pairs around the middle and their flow."""
  sharp, middle = clips["sharp"], clips["sharp"].shape[1] // 2
  first = jnp.concatenate([sharp[:, middle + 1], sharp[:, middle - 1]])
  second = jnp.concatenate([sharp[:, middle], sharp[:, middle]])
  target = jnp.concatenate([clips["flow_next"][:, middle], clips["flow_prev"][:, middle]])
  return first, second, target


LOSSES: dict[str, LossFn] = {"deblur": deblur_loss, "flow": flow_loss}


# ----------------------------------------------------------------------------- the steps


def train_step(state: TrainState, batch: PyTree, *, loss_fn: LossFn,
               optimizer: optax.GradientTransformation, schedule: optax.Schedule,
               trainable: tuple[str, ...]) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimiser step on one device's shard; gradients and metrics are pmean'd over `data`.

  Only the networks named in `trainable` get gradients (the others, e.g. a frozen FlowNetS,
  still pass gradients through to their inputs).
  """
  rng, step_rng = jax.random.split(state.rng)
  # Dropout differs between devices, as it would between the examples of one big batch.
  device_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(DATA_AXIS))
  trained = {name: state.params[name] for name in trainable}

  def objective(trained_params):
    params = {**state.params, **trained_params}
    return loss_fn(params, state.batch_stats, batch, device_rng)

  (_, (metrics, batch_stats)), grads = jax.value_and_grad(objective, has_aux=True)(trained)
  grads, metrics, batch_stats = jax.lax.pmean((grads, metrics, batch_stats), DATA_AXIS)
  updates, opt_state = optimizer.update(grads, state.opt_state, trained)
  params = {**state.params, **optax.apply_updates(trained, updates)}
  metrics["learning_rate"] = schedule(state.step)
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                            opt_state=opt_state, rng=rng)
  return new_state, metrics


# ----------------------------------------------------------------------------- evaluation


def deblur_eval(state: TrainState, batch: PyTree, *, networks: Networks,
                settings: losses.LossSettings, num_images: int):
  """Scores d on one device's held-out labeled clips; returns `(metrics, images)`.

  Metrics (pmean'd): `psnr` / `ssim` of the restored middle frame clamped and rounded to 8 bits,
  `psnr_input` of the blurry input; with a flow network also `psnr_reblur` / `loss_reblur` of the
  reblurred frame against the blurry one. Images: the first `num_images` clips of the global
  batch, `blurry`, `deblurred`, `reblurred` (with flow) and `sharp`, each `[k, H, W, 3]`.
  """
  network = networks["deblur"]
  clips = batch["labeled"]
  blurry, sharp = _middle(clips["blurry"]), _middle(clips["sharp"])
  offsets = losses.reblur_offsets(settings.frames) if "flow" in networks else (0,)
  variables = checkpoint.network_variables(state.params, state.batch_stats, "deblur")
  restored, _ = apply_deblur(
      network, variables, losses.windows(clips["blurry"], network.num_input_frames, offsets),
      train=False)
  restored = restored.reshape(len(offsets), *blurry.shape)
  deblurred = restored[offsets.index(0)]
  saved = image_metrics.quantize(deblurred)
  metrics = {"psnr": jnp.mean(image_metrics.psnr(saved, sharp)),
             "ssim": jnp.mean(image_metrics.ssim(saved, sharp)),
             "psnr_input": jnp.mean(image_metrics.psnr(blurry, sharp))}
  images = {"blurry": blurry, "deblurred": deblurred}
  if "flow" in networks:
    metrics["loss_reblur"], images["reblurred"] = losses.reblur_loss(
        restored, blurry, _flow_fn(networks, state.params), **settings.reblur_kwargs())
    metrics["psnr_reblur"] = losses.clipped_mean_psnr(images["reblurred"], blurry)
  images["sharp"] = sharp
  return jax.lax.pmean(metrics, DATA_AXIS), _first_images(images, num_images)


def flow_eval(state: TrainState, batch: PyTree, *, networks: Networks,
              settings: losses.LossSettings, num_images: int):
  """Endpoint error in pixels (`epe`) of FlowNetS at full resolution on held-out clips."""
  del settings, num_images
  first, second, target = _flow_pairs(batch["labeled"])
  flow = networks["flow"].apply({"params": state.params["flow"]}, first, second)
  return {"epe": jax.lax.pmean(losses.endpoint_error(flow, target), DATA_AXIS)}, {}


def _first_images(images: dict[str, jax.Array], count: int) -> dict[str, jax.Array]:
  """The first `count` images of the global batch, gathered to every device."""
  return {name: jax.lax.all_gather(x[:count], DATA_AXIS, tiled=True)[:count]
          for name, x in images.items()}


EVALS = {"deblur": deblur_eval, "flow": flow_eval}
