"""Training checkpoints: Orbax `CheckpointManager` under `<workdir>/checkpoints`.

Each step directory holds three items: `state` (the train state: params, BN statistics, optimiser
state, step, RNG), `dataset` (the grain iterator's position, one file per process) and `config`
(the run's ConfigDict as JSON). Saves are asynchronous; a step directory appears only once fully
written, so a run killed at any moment resumes from its last complete checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

PyTree = Any
CHECKPOINT_DIR = "checkpoints"


def create_manager(workdir: str | os.PathLike, *, max_to_keep: int) -> ocp.CheckpointManager:
  """The run's checkpoint manager (async saves, keeps the newest `max_to_keep` steps)."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=True,
      # Temporary directories are what a killed save leaves behind.
      cleanup_tmp_directories=True)
  return ocp.CheckpointManager(epath.Path(workdir) / CHECKPOINT_DIR, options=options)


def save(manager: ocp.CheckpointManager, state: PyTree, data_iterator: Any,
         config: ml_collections.ConfigDict) -> None:
  """Starts an async save of `state` and the iterator position at step `state.step`.

  The iterator state is read now (synchronously), so it matches the batches `state` has seen.
  """
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      dataset=grain.checkpoint.CheckpointSave(data_iterator),
      config=ocp.args.JsonSave(config.to_dict())))


def restore_latest(manager: ocp.CheckpointManager, abstract_state: PyTree,
                   data_iterator: Any) -> PyTree | None:
  """Restores the newest checkpoint into `abstract_state`'s structure and shardings.

  `data_iterator` is moved to the saved position in place. Returns None when there is none.
  """
  step = manager.latest_step()
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state),
      dataset=grain.checkpoint.CheckpointRestore(data_iterator)))
  return restored.state


@dataclasses.dataclass(frozen=True)
class RestoredCheckpoint:
  """A training checkpoint as host data.

  Attributes:
    step: optimiser steps taken.
    state: the train state as nested dicts of NumPy arrays: `params` (`{'deblur': ..., 'flow':
      ...}`, the networks the run trains or uses), `batch_stats`, `opt_state`, `step`, `rng`.
    config: the run's configuration.
  """
  step: int
  state: dict[str, Any]
  config: ml_collections.ConfigDict


def restore_checkpoint(path: str | os.PathLike, step: int | None = None) -> RestoredCheckpoint:
  """Opens a run's checkpoint on whatever devices this process has, as NumPy arrays.

  A checkpoint written by N devices on M hosts opens in a 1-device notebook: arrays are read to
  host memory, never to the devices that wrote them.

  Args:
    path: a training workdir, or its `checkpoints` directory.
    step: which step; the newest when None.

  Returns:
    A `RestoredCheckpoint`. Networks are rebuilt from it with e.g.
    `{'params': ckpt.state['params']['deblur'], 'batch_stats': ckpt.state['batch_stats']['deblur']}`.
  """
  directory = epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))  # Orbax: absolute.
  if (directory / CHECKPOINT_DIR).is_dir():
    directory = directory / CHECKPOINT_DIR
  # The dataset handler is only named, so that Orbax recognises the item it is not asked for.
  handlers = {"state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler(),
              "dataset": grain.checkpoint.CheckpointHandler()}
  with ocp.CheckpointManager(directory, item_handlers=handlers,
                             options=ocp.CheckpointManagerOptions(
                                 read_only=True, create=False, save_interval_steps=0)) as manager:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No training checkpoint under {os.fspath(path)}: expected a workdir written by "
          "`python train.py --workdir=...` (or its checkpoints/ directory).")
    if step is None:
      step = max(steps)
    elif step not in steps:
      raise ValueError(f"step {step} is not among the saved steps {sorted(steps)} of {directory}.")
    metadata = manager.item_metadata(step).state
    # A NumPy target makes Orbax read to host memory, ignoring the writer's device shardings.
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                          getattr(metadata, "item_metadata", metadata), is_leaf=_is_array_metadata)
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()))
  return RestoredCheckpoint(step=int(step), state=restored.state,
                            config=ml_collections.ConfigDict(restored.config))


def _is_array_metadata(node: Any) -> bool:
  return hasattr(node, "shape") and hasattr(node, "dtype")
