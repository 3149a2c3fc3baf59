"""Test-time adaptation: fine-tuning a deblur network on the very video it is about to deblur.

The paper's single-image / group fine-tuning (Sec. 4.3, Table 4): the self-supervised reblur loss
`L_U` on clips of the video (the unlabeled set U), optionally mixed with labeled clips (`L_S`).
It is the training run of the checkpoint's own config with other data: `train.create_run` builds
the optimiser, the train state (from the given variables) and the data-parallel step (losses,
blur model, frozen BatchNorm and FlowNetS as configured), the input pipeline cuts random crops
from the video's clips, and `train.loop` runs the steps. With `safeguards` (`safeguards.py`) some frames are held out and their reblur error decides
which weights to keep: the best held-out step's, or the starting ones.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from reblur_jax import checkpoint
from reblur_jax.data import estimated_flows
from reblur_jax.data import pipeline
from reblur_jax.evaluation import safeguards as safeguards_lib
from reblur_jax.training import inputs
from reblur_jax.training import losses
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import step as step_lib
from reblur_jax.training import train
from reblur_jax.training import variants
from reblur_jax.training import validation

PyTree = Any
PAPER_LEARNING_RATE = 1e-4  # The paper's fine-tuning rate (Table 4).
# Adapting pretrained/dvd to each validation sequence (TV-L1 flows, 100 steps, safeguards on)
# gained +0.36 dB on average at 1e-3 against +0.27 at 1e-4 (docs/adaptation.md).
LEARNING_RATE = 1e-3
# Flows treated as constants while adapting: on the validation sequences 20 steps lowered PSNR
# by 0.07 dB on average this way against 0.17 dB with gradients through FlowNetS
# (docs/adaptation.md).
FLOW_GRADIENT = "stop"
LABELED_FRACTION = 0.5  # Labeled share of a batch when labeled clips are mixed in, by default.
# Weight of L_U against L_S when labeled clips are mixed in. Adapting pretrained/dvd to validation
# videos blurred like real ones (3 frames averaged in linear light): mean gain +0.81 dB at 0.3,
# +0.52 at 1, +0.06 at 3, and +0.25 with L_S alone (docs/adaptation.md).
ALPHA = 0.3


def labeled_default(config: ml_collections.ConfigDict) -> str | None:
  """The labeled set adapting mixes in when not told: the one the checkpoint was trained on
  (None for a run without labeled clips)."""
  if config.get("unlabeled_fraction", 0.0) >= 1:
    return None
  return config.get("labeled_dataset") or None


def default_flow_source(config: ml_collections.ConfigDict, *, flow_network_at_hand: bool) -> str:
  """Where adapting takes the reblur loss's flows when not told: the checkpoint config's
  `flow_source`, or TV-L1 on the blurry frames where no FlowNetS is at hand (a supervised
  network's run had none, and TV-L1 needs none)."""
  source = state_lib.flow_source(config)
  return source if flow_network_at_hand else "tvl1"


def adaptation_config(config: ml_collections.ConfigDict, *, steps: int, frame_size: tuple[int, int],
                      learning_rate: float = LEARNING_RATE, batch_size: int | None = None,
                      labeled_dataset: str | None = None, data_dir: str | None = None,
                      flow_gradient: str | None = None, flow_source: str | None = None,
                      tau: float | None = None, linear_light: bool | None = None,
                      alpha: float = ALPHA) -> ml_collections.ConfigDict:
  """The checkpoint's training config, turned into fine-tuning on one video (or a few clips).

  Args:
    config: the config the checkpoint was trained with.
    steps: optimiser steps.
    frame_size: `(H, W)` of the video; crops are at most this large.
    learning_rate: Adam's rate.
    batch_size: clips per step (None: the config's).
    labeled_dataset: a prepared labeled set to mix in ("name/config"), or None for the video
      alone; `config.unlabeled_fraction` of each batch is then video (0.5 if the config had none).
    data_dir: where `labeled_dataset` is prepared.
    flow_gradient: "through" | "stop" FlowNetS for the reblur loss (None: the config's).
    flow_source: "flownets" | "tvl1", where the reblur loss's flows come from (None: the
      config's; `reblur_jax.data.estimated_flows`).
    tau: the blur model's exposure (`config.tau`'s meaning; None: the config's). A supervised
      run never reads its config's tau; adapting its network does.
    linear_light: blur in linear light (`config.reblur_linear_light`; None: the config's).
    alpha: weight of `L_U` against `L_S`; it matters only with `labeled_dataset`, since Adam's
      steps do not depend on the scale of a single loss.
  """
  if steps < 1:
    raise ValueError(f"adapt_steps must be >= 1 to adapt, got {steps}.")
  config = ml_collections.ConfigDict(config.to_dict())
  config.task = "deblur"
  config.learning_rate = learning_rate
  config.flow_gradient = flow_gradient or config.flow_gradient
  config.flow_source = flow_source or state_lib.flow_source(config)
  if tau is not None:
    config.tau = tau
  if linear_light is not None:
    config.reblur_linear_light = linear_light
  config.alpha = alpha
  # The paper's fine-tuning: BatchNorm statistics frozen, and a constant rate.
  config.train_mode = False
  variants.short_run(config, steps=steps, batch_size=batch_size or config.batch_size,
                     crop_size=min(config.crop_size, *frame_size))
  if labeled_dataset:
    config.labeled_dataset = labeled_dataset
    config.data_dir = data_dir or config.data_dir
    if not 0 < config.unlabeled_fraction < 1:
      config.unlabeled_fraction = LABELED_FRACTION
  else:
    config.unlabeled_fraction = 1.0
  return config


def clip_length(config: ml_collections.ConfigDict) -> int:
  """Frames per unlabeled clip that `adapt` needs under `config` (the training step's)."""
  return train.clip_length(config, state_lib.create_networks(config))


class Adaptation(NamedTuple):
  """What `adapt` returns.

  Attributes:
    variables: the deblur network's `{'params', 'batch_stats'?}` (host arrays): the adapted ones,
      or the starting ones where the safeguards declined.
    history: the logged training means (`{'step', 'loss', 'loss_reblur', 'psnr_reblur', ...}`).
    decision: what the safeguards decided (`decision.describe()` says it in a line).
    held_out: the held-out measurements from step 0, `{'step', 'loss_reblur', 'psnr_reblur',
      'sharpness'}`.
  """
  variables: PyTree
  history: list[dict[str, float]]
  decision: safeguards_lib.Decision
  held_out: list[dict[str, float]]


class _Subset(Sequence):
  """`source[indices[i]]` as item `i`: some clips of a video, without copying them."""

  def __init__(self, source: Sequence, indices: Sequence[int]):
    self.source, self.indices = source, list(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int):
    return self.source[self.indices[index]]


def adapt(config: ml_collections.ConfigDict, variables: dict[str, PyTree],
          clips: Sequence[dict[str, np.ndarray]], *, log_every: int | None = None,
          safeguards: safeguards_lib.Safeguards | None = None,
          on_measure: Callable[[dict[str, float], PyTree], None] | None = None) -> Adaptation:
  """Fine-tunes the deblur network on unlabeled `clips` with the run's losses.

  Args:
    config: an `adaptation_config`.
    variables: `{'deblur': ..., 'flow': ...}`, each `{'params', 'batch_stats'?}` (host arrays).
    clips: what to adapt to, a random-access source of `{'blurry': uint8 [T, H, W, 3]}` centred
      on the frames to restore, `T >= clip_length(config)`: a whole video
      (`video.Clips(frames, clip_length(config))`), or chosen clips of a data set (one image or a
      group of them, the paper's Table 4).
    log_every: steps between logged metric means (None: about ten times in all).
    safeguards: hold out every `holdout_every`-th clip and keep the best weights by its reblur
      error, or the starting ones (`safeguards.py`); None adapts to every clip for all steps.
    on_measure: called with each held-out measurement and the deblur variables measured (host
      arrays), e.g. to score them against ground truth in experiments.

  Returns:
    An `Adaptation`: the deblur variables, the logged means, the decision and the held-out
    measurements.

  Raises:
    train.NonFiniteLossError: the loss became NaN or inf.
    validation.ConfigError: a bad safeguard setting.
  """
  # The datasets and init checkpoints are the caller's (the video, restored variables).
  validation.validate_config(config, jax.device_count(), check_files=False)
  start = variables["deblur"]
  held_out = []
  if safeguards is not None:
    safeguards_lib.check(safeguards)
    adapted, held = safeguards_lib.held_out_frames(len(clips), safeguards.holdout_every,
                                                   safeguards.max_held_out)
    if not held:
      return _declined(start, safeguards_lib.Decision(
          False, 0, 0, f"{len(clips)} frames are too few to hold one out of adaptation"))
    held_out = [_whole_clip(clips[i], config.flow_source) for i in held]
    clips = _Subset(clips, adapted)
  steps = config.num_train_steps
  log_every = log_every or max(1, steps // 10)
  mesh = sharding.create_mesh()
  networks = state_lib.create_networks(config)
  sizes = validation.batch_sizes(config)
  if sizes["labeled"]:  # The embedded synthetic sets are generated the first time they are used.
    inputs.prepare_if_synthetic(config.labeled_dataset, config.data_dir or None)
  run = train.create_run(config, networks, mesh,
                         steps_per_epoch=math.ceil(len(clips) / sizes["unlabeled"]),
                         variables={name: variables[name] for name in networks})
  batches = pipeline.create_train_iterator(
      labeled=config.labeled_dataset if sizes["labeled"] else None,
      unlabeled=clips, labeled_batch_size=sizes["labeled"],
      unlabeled_batch_size=sizes["unlabeled"], crop_size=config.crop_size,
      clip_length=run.clip_length, unlabeled_flows=config.flow_source, seed=config.seed,
      data_dir=config.data_dir or None)

  state, history = run.state, []
  train_step = run.train_step
  average = jax.tree.map(jnp.copy, state.params["deblur"])
  if safeguards is not None:
    measure = jax.jit(functools.partial(_reblur_error, networks=networks,
                                        settings=losses.LossSettings.from_config(config)))
    tracker = safeguards_lib.Tracker(safeguards.patience, safeguards.sharpness_tolerance)
    held_out_log = [_measure(measure, state, held_out, 0)]
    tracker.update(0, held_out_log[0]["loss_reblur"], held_out_log[0]["sharpness"])
    if on_measure:
      on_measure(held_out_log[0], start)
    decision = safeguards_lib.decline_before(held_out_log[0]["psnr_reblur"],
                                             safeguards.min_reblur_psnr)
    if decision is not None:
      return _declined(start, decision, held_out_log)
    best = start
    if safeguards.anchor:
      train_step = _anchored(train_step, state.params["deblur"], safeguards.anchor)
  decay = safeguards.weight_average if safeguards is not None else 0.0
  eval_every = safeguards.eval_every if safeguards is not None else steps
  step = 0
  try:
    for point in train.loop(_averaged(train_step, decay), (state, average), batches, mesh,
                            start=0, total=steps,
                            pause=lambda s: s % log_every == 0 or s % eval_every == 0,
                            desc="adapt"):
      (state, average), step = point.state, point.step
      # What is measured and kept: the averaged parameters (the last step's without averaging).
      state = state.replace(params={**state.params, "deblur": average})
      if step % log_every == 0 or point.last:
        history.append({"step": step, **point.metrics.mean()})
        point.bar.set_postfix(loss_reblur=f"{history[-1]['loss_reblur']:.4g}")
        logging.info("Adaptation step %d: %s", step, history[-1])
      if safeguards is not None and (step % eval_every == 0 or point.last):
        held_out_log.append(_measure(measure, state, held_out, step))
        logging.info("Adaptation step %d, held-out frames: %s", step, held_out_log[-1])
        current = _deblur_variables(state) if on_measure else None
        if on_measure:
          on_measure(held_out_log[-1], current)
        if tracker.update(step, held_out_log[-1]["loss_reblur"], held_out_log[-1]["sharpness"]):
          best = current or _deblur_variables(state)
        if tracker.stop:
          break
  except train.NonFiniteLossError as e:
    raise train.NonFiniteLossError(
        f"The adaptation loss is {e.loss} at step {e.step}; lower --adapt_learning_rate.",
        step=e.step, loss=e.loss) from None
  if safeguards is None:
    return Adaptation(_deblur_variables(state), history,
                      safeguards_lib.Decision(True, steps, steps, "no safeguards"), [])
  decision = safeguards_lib.decide(tracker, step, safeguards.margin, stopped=step < steps)
  logging.info("Adaptation %s.", decision.describe())
  return Adaptation(best if decision.adapted else start, history, decision, held_out_log)


def _declined(start: PyTree, decision: safeguards_lib.Decision,
              held_out: list[dict[str, float]] | None = None) -> Adaptation:
  logging.info("Adaptation %s.", decision.describe())
  return Adaptation(start, [], decision, held_out or [])


def _deblur_variables(state: state_lib.TrainState, *, to_host: bool = True) -> PyTree:
  variables = checkpoint.network_variables(state.params, state.batch_stats, "deblur")
  return jax.device_get(variables) if to_host else variables


def _anchored(train_step: Callable, start: PyTree, fraction: float) -> Callable:
  """`train_step` followed by moving d's parameters `fraction` of the way back to `start`."""
  pull = jax.jit(lambda params, anchor: jax.tree.map(lambda p, a: p - fraction * (p - a),
                                                     params, anchor))

  def step(state, batch):
    state, metrics = train_step(state, batch)
    params = {**state.params, "deblur": pull(state.params["deblur"], start)}
    return state.replace(params=params), metrics
  return step


def _averaged(train_step: Callable, decay: float) -> Callable:
  """`train_step` on `(state, average)`: also moves `average`, a moving average of d's
  parameters, `1 - decay` of the way to the new ones (decay 0: `average` is the new ones).

  `average` must not share buffers with `state`, which the step donates."""
  mix = jax.jit(lambda average, params: jax.tree.map(
      lambda a, p: decay * a + (1 - decay) * p, average, params))

  def step(carry, batch):
    state, average = carry
    state, metrics = train_step(state, batch)
    params = state.params["deblur"]
    return (state, mix(average, params) if decay else params), metrics
  return step


def _whole_clip(clip: dict[str, np.ndarray], flow_source: str) -> dict[str, jax.Array]:
  """One held-out clip as a batch of one unlabeled clip, with its fixed flows if it needs any."""
  whole = {"blurry": jnp.asarray(clip["blurry"][None], jnp.float32) / 255.0}
  if flow_source == "tvl1":
    whole.update({key: jnp.asarray(flow[None])
                  for key, flow in estimated_flows.middle_flows(clip["blurry"]).items()})
  return whole


def _reblur_error(state: state_lib.TrainState, unlabeled: dict[str, jax.Array], *,
                  networks: dict, settings: losses.LossSettings
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(L_U, reblur PSNR, sharpness)` of the state's deblur network on whole unlabeled clips
  (`blurry` `[B, T, H, W, 3]`, and fixed flows with `flow_source="tvl1"`); sharpness is the mean
  absolute gradient of the restored middle frames."""
  _, (metrics, _) = step_lib.deblur_loss(state.params, state.batch_stats,
                                         {"unlabeled": unlabeled}, state.rng,
                                         networks=networks, settings=settings)
  network = networks["deblur"]
  restored, _ = step_lib.apply_deblur(
      network, _deblur_variables(state, to_host=False),
      losses.windows(unlabeled["blurry"], network.num_input_frames, (0,)), train=False)
  restored = jnp.clip(restored, 0.0, 1.0)
  sharpness = (jnp.mean(jnp.abs(jnp.diff(restored, axis=1)))
               + jnp.mean(jnp.abs(jnp.diff(restored, axis=2))))
  return metrics["loss_reblur"], metrics["psnr_reblur"], sharpness


def _measure(measure, state: state_lib.TrainState, clips: Sequence[dict[str, jax.Array]],
             step: int) -> dict[str, float]:
  """Mean held-out reblur error, reblur PSNR and sharpness over `clips` (`_whole_clip`s), one
  at a time."""
  values = np.array([jax.device_get(measure(state, clip)) for clip in clips], np.float64)
  return {"step": step, "loss_reblur": float(values[:, 0].mean()),
          "psnr_reblur": float(values[:, 1].mean()), "sharpness": float(values[:, 2].mean())}
