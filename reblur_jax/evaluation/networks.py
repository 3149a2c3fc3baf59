"""A restored training run as networks that deblur, estimate flow and reblur: `restore(path)`.

    import reblur_jax
    run = reblur_jax.restore("runs/demo/dvd_reblur")  # a workdir, <workdir>/checkpoints/<step>,
                                                       # or a shipped network: pretrained/dvd
    deblurred = run.deblur(frames)                     # uint8 [T, H, W, 3] -> uint8 [T, H, W, 3]
    flow_prev, flow_next = run.flows(frames)           # FlowNetS between neighbours, [T, H, W, 2]
    reblurred = run.reblur(frames)                     # what the reblur loss L_U compares

The networks are rebuilt from the run's config and checked against the restored variables
(`checkpoint.check_variables`), so a checkpoint of another model or width fails naming both.
Each frame `t` is restored from the network's window of frames centred on it, replicate-padded
at the ends of the video, as the data sets pad their sequences.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from reblur_jax import blur
from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.data import estimated_flows
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import video
from reblur_jax.training import losses

PyTree = Any


def create_deblur(config: ml_collections.ConfigDict) -> nn.Module:
  """The deblur network a config describes (`config.model`, `config.model_kwargs`)."""
  return models.create(config.model, **config.model_kwargs)


def create_flow(config: ml_collections.ConfigDict) -> nn.Module:
  return models.create("flownets", **config.flow_model_kwargs)


def deblur_fn(module: nn.Module, variables: PyTree) -> Callable[[np.ndarray], jax.Array]:
  """`windows [B, n, H, W, 3] -> restored [B, H, W, 3]`, jitted (compiles once per shape).

  Frames of any size work: the networks pad to their stride and crop back themselves.
  """
  variables = jax.device_put(variables)
  apply = jax.jit(functools.partial(module.apply, train=False))
  return lambda windows: apply(variables, windows)


class Restored:
  """A training run's networks, restored and checked (module docstring).

  Attributes:
    path: the checkpoint it was restored from.
    step: optimiser steps the run had taken.
    config: the run's configuration (a copy; `use_flow` may set its `flow_model_kwargs`).
    model: the deblur network's description, e.g. `dvd(frames=5, width=0.25)`.
    deblur_network, deblur_variables: d and its `{'params', 'batch_stats'?}` (host arrays).
    flow_network, flow_variables: FlowNetS and its variables, None when the run has none and
      `use_flow` was not called.
  """

  def __init__(self, run: checkpoint.RestoredRun):
    self.path, self.step = run.path, run.step
    self.config = ml_collections.ConfigDict(run.config.to_dict())
    self.model = checkpoint.describe(self.config.model, self.config.model_kwargs)
    self.deblur_network = create_deblur(self.config)
    self.deblur_variables = run.variables("deblur")
    checkpoint.check_variables(self.deblur_network, self.deblur_variables, source=self.path,
                               model=self.model)
    self.flow_network = self.flow_variables = None
    if "flow" in run.networks:
      self._set_flow(run.variables("flow"), source=self.path)

  def use_flow(self, path: str | os.PathLike) -> None:
    """FlowNetS from `path` (a training run or a variables directory) where the run has none.

    A training run brings its `flow_model_kwargs` into `config`.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    if checkpoint.is_run(path):
      flow_run = checkpoint.restore_run(path)
      self.config.flow_model_kwargs = flow_run.config.flow_model_kwargs
      variables = flow_run.variables("flow")
    else:
      variables = checkpoint.load_variables(path)
    self._set_flow(variables, source=path)

  def _set_flow(self, variables: PyTree, *, source: str) -> None:
    network = create_flow(self.config)
    checkpoint.check_variables(network, variables, source=source, model=checkpoint.describe(
        "flownets", self.config.flow_model_kwargs))
    self.flow_network, self.flow_variables = network, variables

  @property
  def networks(self) -> list[str]:
    """The networks restored, `['deblur']` or `['deblur', 'flow']`."""
    return ["deblur"] + (["flow"] if self.flow_network is not None else [])

  @property
  def window(self) -> int:
    """Frames the deblur network reads per restored frame."""
    return self.deblur_network.num_input_frames

  @functools.cached_property
  def deblur_fn(self) -> Callable[[np.ndarray], jax.Array]:
    """`windows float32 [B, n, H, W, 3] -> restored [B, H, W, 3]` (`deblur_fn`)."""
    return deblur_fn(self.deblur_network, self.deblur_variables)

  def deblur_stream(self, frames: Iterable[np.ndarray], *, tile: int | None = None
                    ) -> Iterator[np.ndarray]:
    """`inference.deblur_frames` with this network: uint8 frames in, uint8 frames out, in order,
    holding a window of frames at a time."""
    return inference.deblur_frames(self.deblur_fn, frames, self.window, tile=tile)

  def deblur(self, frames: Iterable[np.ndarray], *, tile: int | None = None) -> np.ndarray:
    """Restores every frame of a video: `uint8 [T, H, W, 3]` -> `uint8 [T, H, W, 3]`."""
    return np.stack(list(self.deblur_stream(frames, tile=tile)))

  def flows(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FlowNetS's `(flow_prev, flow_next)`, each `float32 [T, H, W, 2]` in pixels: the backward-
    warping flows from frames t-1 and t+1 to frame t (docs/conventions.md), for `frames`
    (`uint8` or float in [0, 1], `[T, H, W, 3]`), replicate-padded at the ends."""
    frames = _as_float(frames)
    index = np.arange(len(frames))
    previous, following = (frames[np.clip(index + d, 0, len(frames) - 1)] for d in (-1, 1))
    flow = self._flow_fn()
    return np.asarray(flow(previous, frames)), np.asarray(flow(following, frames))

  def reblur(self, frames: np.ndarray, *, flows: tuple[np.ndarray, np.ndarray] | None = None
             ) -> np.ndarray:
    """The restored frames blurred back as training does, `float32 [T, H, W, 3]`.

    Each frame is deblurred (unrounded), the motion is estimated as the run's `flow_source`
    says (FlowNetS between the restored neighbours, or TV-L1 between the blurry ones), and the
    run's blur model (`config.frames`, `tau`, `blur_model`) blurs the restored frame with it:
    what the reblur loss `L_U` compares with the blurry frame. `flows` (`(flow_prev,
    flow_next)`, e.g. ground truth) replaces the estimate.
    """
    blurry = _as_float(frames)
    restored = np.concatenate([inference.restore(self.deblur_fn, clip[None])
                               for clip in video.windows(blurry, self.window)])
    settings = losses.LossSettings.from_config(self.config)
    if flows is None and settings.flow_source == "tvl1":
      flows = estimated_flows.video_flows(frames)
    if flows is not None:
      flow_prev, flow_next = flows
      return np.asarray(blur.reblur_batch(
          restored, flow_prev if settings.frames == 3 else None, flow_next, tau=settings.tau,
          method=settings.blur_model, max_disp=settings.max_disp,
          samples=settings.blur_samples, linear_light=settings.linear_light))
    index = np.arange(len(restored))
    neighbours = {d: restored[np.clip(index + d, 0, len(restored) - 1)] for d in (-1, 0, 1)}
    per_offset = np.stack([neighbours[d] for d in losses.reblur_offsets(settings.frames)])
    _, reblurred = losses.reblur_loss(per_offset, blurry, self._flow_fn(),
                                      **settings.reblur_kwargs())
    return np.asarray(reblurred)

  def _flow_fn(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if self.flow_network is None:
      raise ValueError(f"{self.path} holds no FlowNetS (its run was trained without unlabeled "
                       "clips): call use_flow(<a flow run or variables directory>), or pass "
                       "flows=.")
    return jax.jit(functools.partial(self.flow_network.apply, self.flow_variables))


def restore(path: str | os.PathLike) -> Restored:
  """Restores a training run (a workdir, its `checkpoints` directory or `checkpoints/<step>`) or
  a shipped network (`pretrained/dvd`: its config from the manifest beside it) as checked
  networks on this machine's devices.

  Raises:
    FileNotFoundError: no training run at `path`.
    checkpoint.CheckpointError: no step of it reads.
    checkpoint.ModelMismatchError: its variables do not fit the networks its config describes.
  """
  return Restored(checkpoint.restore_run(path))


def _as_float(frames: np.ndarray) -> np.ndarray:
  frames = np.asarray(frames)
  return frames.astype(np.float32) / np.float32(255.0) if frames.dtype == np.uint8 else (
      frames.astype(np.float32))

