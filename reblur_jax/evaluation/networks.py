"""Networks restored for inference, checked against the model they are meant for.

Paths that name networks:
* a training run: its workdir (`python train.py --workdir=W`), `W/checkpoints` (the newest step),
  or one step, `W/checkpoints/<step>`; these also hold the run's config;
* a variables directory (`reblur_jax.checkpoint.save_variables`: `W/variables/deblur`, the weight
  converters' output, a config's `init_checkpoint`), which holds one network and no config.

Variables are compared with the shapes the module would initialise before they are used, so a
checkpoint of another model or width fails naming both, instead of deep inside flax.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.training import checkpointing
from reblur_jax.training import validation

PyTree = Any
_CHECK_SIZE = 64  # Frame side used to derive the expected variable shapes (any size works).


class ModelMismatchError(validation.ConfigError):
  """Variables whose structure or shapes do not fit the network they are loaded into."""


def is_run(path: str | os.PathLike) -> bool:
  """Whether `path` is a training workdir, its `checkpoints` directory or one of its steps."""
  path = os.fspath(path)
  return (os.path.isdir(os.path.join(path, checkpointing.CHECKPOINT_DIR))
          or os.path.basename(os.path.normpath(path)) == checkpointing.CHECKPOINT_DIR
          or _is_step(path))


def _is_step(path: str) -> bool:
  return os.path.basename(os.path.normpath(path)).isdigit() and os.path.isdir(
      os.path.join(path, "state"))


def restore_run(path: str | os.PathLike) -> checkpointing.RestoredCheckpoint:
  """Opens a training run's checkpoint (module docstring) as host NumPy arrays.

  Raises:
    FileNotFoundError: `path` does not exist or is not a training run.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No checkpoint at {path}: expected a training workdir (`python "
                            "train.py --workdir=...`) or one of its checkpoints/<step> folders.")
  if _is_step(path):
    return checkpointing.restore_checkpoint(os.path.dirname(path),
                                            step=int(os.path.basename(path)))
  return checkpointing.restore_checkpoint(path)


def run_variables(run: checkpointing.RestoredCheckpoint, name: str, *, source: str) -> PyTree:
  """Network `name`'s (`'deblur'` or `'flow'`) `{'params', 'batch_stats'}` in a restored run."""
  params = run.state["params"]
  if name not in params:
    raise ModelMismatchError(
        f"{source} holds no {name} network: its run (task={run.config.task!r}) trained "
        f"{sorted(params)}. Pass a checkpoint of a run that has one.")
  variables = {"params": params[name]}
  if name in run.state.get("batch_stats", {}):
    variables["batch_stats"] = run.state["batch_stats"][name]
  return variables


def create_deblur(config: ml_collections.ConfigDict) -> nn.Module:
  """The deblur network a config describes (`config.model`, `config.model_kwargs`)."""
  return models.create(config.model, **config.model_kwargs)


def create_flow(config: ml_collections.ConfigDict) -> nn.Module:
  return models.create("flownets", **config.flow_model_kwargs)


def describe(name: str, kwargs: Mapping[str, Any]) -> str:
  """`dvd(frames=5, width=0.25)`: a model name with its constructor arguments."""
  return f"{name}({', '.join(f'{k}={v}' for k, v in sorted(dict(kwargs).items()))})"


def check_variables(module: nn.Module, variables: PyTree, *, source: str, model: str) -> None:
  """Raises `ModelMismatchError` unless `variables` fit `module` (same keys, same shapes).

  Args:
    module: a deblur network or FlowNetS.
    variables: `{'params': ..., 'batch_stats': ...}` as loaded.
    source: where they came from, for the message.
    model: how to name the expected model, e.g. `describe(config.model, config.model_kwargs)`.
  """
  expected = _flat_shapes(_expected_variables(module))
  found = _flat_shapes(variables)
  problems = [f"missing {k}" for k in sorted(expected.keys() - found.keys())]
  problems += [f"unexpected {k}" for k in sorted(found.keys() - expected.keys())]
  problems += [f"{k}: {found[k]} instead of {expected[k]}"
               for k in sorted(expected.keys() & found.keys()) if found[k] != expected[k]]
  if problems:
    shown = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
    raise ModelMismatchError(
        f"{source} does not hold a {model} network ({len(problems)} differences: {shown}). It "
        "was saved for another model or width: pass a checkpoint of this model, or set "
        "config.model / config.model_kwargs (flow: config.flow_model_kwargs) to the model it "
        "holds.")


def _expected_variables(module: nn.Module) -> PyTree:
  """Shapes of the variables `module.init` creates, without computing them."""
  image = jnp.zeros((1, _CHECK_SIZE, _CHECK_SIZE, 3), jnp.float32)
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
  if hasattr(module, "num_input_frames"):
    clip = jnp.zeros((1, module.num_input_frames) + image.shape[1:], jnp.float32)
    return jax.eval_shape(functools.partial(module.init, train=False), rngs, clip)
  return jax.eval_shape(module.init, rngs, image, image)


def _flat_shapes(variables: PyTree) -> dict[str, tuple[int, ...]]:
  flat = traverse_util.flatten_dict(dict(variables), sep="/")
  return {key: tuple(np.shape(value)) for key, value in flat.items()}


def load_variables(path: str | os.PathLike, module: nn.Module, *, model: str,
                   network: str = "deblur") -> PyTree:
  """Variables of `module` from a training run (network `network`) or a variables directory.

  Raises:
    FileNotFoundError: nothing loadable at `path`.
    ModelMismatchError: the variables belong to another model or width.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if is_run(path):
    variables = run_variables(restore_run(path), network, source=path)
  else:
    variables = checkpoint.load_variables(path)
  check_variables(module, variables, source=path, model=model)
  return variables


def deblur_fn(module: nn.Module, variables: PyTree) -> Callable[[np.ndarray], jax.Array]:
  """`windows [B, n, H, W, 3] -> restored [B, H, W, 3]`, jitted (compiles once per shape).

  Frames of any size work: the networks pad to their stride and crop back themselves.
  """
  variables = jax.device_put(variables)
  apply = jax.jit(functools.partial(module.apply, train=False))
  return lambda windows: apply(variables, windows)
