"""The train state and how a run builds it: networks from the config, initial variables."""

from __future__ import annotations

import functools
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from reblur_jax import checkpoint
from reblur_jax import models

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes; a pytree of arrays, replicated over devices.

  Attributes:
    step: `int32 []` optimiser steps taken.
    params: `{'deblur': ..., 'flow': ...}`, the networks the task uses.
    batch_stats: BatchNorm running statistics per network (`{}` when none has BatchNorm).
    opt_state: optimiser state over the trained networks' params only.
    rng: `uint32 [2]` key; each step splits it.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: optax.OptState
  rng: jax.Array


def create_networks(config: ml_collections.ConfigDict) -> dict[str, nn.Module]:
  """The task's flax modules: d (`'deblur'`) and/or FlowNetS (`'flow'`).

  Deblurring uses FlowNetS only when some clips are unlabeled (the reblur term needs flow) and
  `flow_source` is "flownets".
  """
  networks = {}
  # Configs from before the field compute in float32.
  dtype = jnp.dtype(config.get("compute_dtype", "float32"))
  if config.task == "deblur":
    networks["deblur"] = models.create(config.model, dtype=dtype, **config.model_kwargs)
  if config.task == "flow" or uses_flownets(config):
    networks["flow"] = models.create("flownets", dtype=dtype, **config.flow_model_kwargs)
  return networks


def flow_source(config: ml_collections.ConfigDict) -> str:
  """Where a run's reblur term takes its flows from; configs from before the field: FlowNetS."""
  return config.get("flow_source", "flownets")


def uses_flownets(config: ml_collections.ConfigDict) -> bool:
  """Whether a deblurring run's reblur term estimates its flows with FlowNetS."""
  return config.unlabeled_fraction > 0 and flow_source(config) == "flownets"


def trainable_networks(config: ml_collections.ConfigDict, networks) -> tuple[str, ...]:
  """Names of the networks that get gradients: d, and f when pre-training or `finetune_flow`."""
  return tuple(name for name in networks
               if name == "deblur" or config.task == "flow" or config.finetune_flow)


def init_checkpoints(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Per network, the `reblur_jax.checkpoint` directory to start from ('' = random init)."""
  return {"deblur": config.init_checkpoint, "flow": config.flow_init_checkpoint}


def init_variables(networks: dict[str, nn.Module], config: ml_collections.ConfigDict
                   ) -> dict[str, PyTree]:
  """Each network's variables: loaded from its init checkpoint, else randomly initialised."""
  sources = init_checkpoints(config)
  variables = {}
  for index, (name, network) in enumerate(networks.items()):
    if sources.get(name):
      variables[name] = checkpoint.load_variables(os.path.expanduser(sources[name]))
      continue
    if config.task == "deblur" and config.unlabeled_fraction > 0:
      logging.warning("Fine-tuning with %s initialised at random (its init checkpoint is empty): "
                      "the reblur loss assumes trained networks; see the config's docstring.",
                      name)
    variables[name] = _random_init(network, name, config.crop_size, config.seed + index)
  return variables


def _random_init(network: nn.Module, name: str, size: int, seed: int) -> PyTree:
  """Flax's initialisers for `network`, run as one compiled program."""
  image = jnp.zeros((1, size, size, 3), jnp.float32)
  if name == "flow":
    init, inputs = network.init, (image, image)
  else:
    clip = jnp.zeros((1, network.num_input_frames, size, size, 3), jnp.float32)
    init, inputs = functools.partial(network.init, train=False), (clip,)
  # XLA's RNG-bit-generator keys: compiling threefry for every layer's initialiser takes ~40 s
  # on a CPU for FlowNetS; these compile in ~1 s. Initial values depend on seed and backend.
  key = jax.random.key(seed, impl="rbg")
  return jax.jit(lambda k: init({"params": k, "dropout": k}, *inputs))(key)


def create_train_state(variables: dict[str, PyTree], trainable: tuple[str, ...],
                       optimizer: optax.GradientTransformation, rng: jax.Array) -> TrainState:
  """A step-0 state from each network's variables (`{'params': ..., 'batch_stats': ...}`)."""
  params = {name: v["params"] for name, v in variables.items()}
  batch_stats = {name: v["batch_stats"] for name, v in variables.items() if "batch_stats" in v}
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
      opt_state=optimizer.init({name: params[name] for name in trainable}), rng=rng)
