"""Training checkpoints: Orbax `CheckpointManager` under `<workdir>/checkpoints`.

Each step directory holds four items: `state` (the train state: params, BN statistics, optimiser
state, step, RNG), `dataset` (the grain iterator's position, one file per process), `config`
(the run's ConfigDict as JSON) and `digest` (a hash of the state's arrays: Orbax stores them
without checksums, so garbled bytes would otherwise restore silently as other numbers). Saves are asynchronous; a step directory appears only once fully
written, so a run killed at any moment resumes from its last complete checkpoint.

A step that is there but does not read (a file truncated or garbled on disk) is skipped with a
warning naming it: training resumes from the newest step that reads, after moving the damaged one
to `<workdir>/checkpoints_damaged/` (kept, never deleted, out of the way of the step it will write
again); reading for evaluation leaves it in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from typing import Any

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from etils import epath

PyTree = Any
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints_damaged"  # Next to CHECKPOINT_DIR: steps that did not read.


class CheckpointError(OSError):
  """No checkpoint step reads; the message names each one and why."""


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
      config=ocp.args.JsonSave(config.to_dict()),
      digest=ocp.args.JsonSave({"state": state_digest(state)})))


def state_digest(state: PyTree) -> str:
  """A hash of every array of `state`, independent of the pytree's container types and order
  (the train state restores as nested dicts for inference)."""
  leaves = sorted(hashlib.blake2b(
      f"{x.dtype}{x.shape}".encode() + np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
                  for x in map(np.asarray, jax.tree.leaves(jax.device_get(state))))
  return hashlib.blake2b(b"".join(leaves), digest_size=16).hexdigest()


class DamagedCheckpointError(ValueError):
  """A step's arrays read, but differ from what was saved."""


def _verify(manager: ocp.CheckpointManager, step: int, state: PyTree) -> None:
  """Raises DamagedCheckpointError unless `state` hashes to the step's saved digest (if any)."""
  if not (epath.Path(manager.directory) / str(step) / "digest").exists():
    return  # Written before digests were saved.
  saved = manager.restore(step, args=ocp.args.Composite(digest=ocp.args.JsonRestore()))
  if saved.digest["state"] != state_digest(state):
    raise DamagedCheckpointError("its arrays differ from the saved digest (garbled on disk)")


def restore_latest(manager: ocp.CheckpointManager, abstract_state: PyTree,
                   data_iterator: Any) -> PyTree | None:
  """Restores the newest checkpoint into `abstract_state`'s structure and shardings.

  `data_iterator` is moved to the saved position in place. Returns None when there is none.
  """
  args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                            dataset=grain.checkpoint.CheckpointRestore(data_iterator))
  step, restored, damaged = _restore_newest_readable(manager, lambda step: args)
  if damaged and jax.process_index() == 0:
    directory = epath.Path(manager.directory)
    aside = directory.parent / DAMAGED_DIR
    aside.mkdir(parents=True, exist_ok=True)
    for bad in damaged:
      # Its step number will be saved again; the damaged copy stays for inspection.
      target = aside / f"{bad}"
      suffix = 0
      while target.exists():
        suffix += 1
        target = aside / f"{bad}.{suffix}"
      shutil.move(os.fspath(directory / str(bad)), os.fspath(target))
      logging.warning("Moved the damaged checkpoint step %d to %s.", bad, target)
  if damaged:
    if jax.process_count() > 1:  # The other hosts wait for the move (a shared filesystem).
      multihost_utils.sync_global_devices("damaged checkpoints moved")
    manager.reload()
  return None if step is None else restored.state


def _restore_newest_readable(manager: ocp.CheckpointManager, args_of_step
                             ) -> tuple[int | None, Any, list[int]]:
  """`(step, restored, damaged steps)` of the newest step that restores; step None if none.

  Raises:
    CheckpointError: there are steps, and none of them reads.
  """
  damaged, errors = [], []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      restored = manager.restore(step, args=args_of_step(step))
      _verify(manager, step, restored.state)
      return step, restored, damaged
    except Exception as e:  # noqa: BLE001  Orbax, TensorStore and JSON each raise their own.
      reason = _reason(e)
      logging.warning("Checkpoint step %d in %s is damaged and was skipped (%s); trying the "
                      "previous one.", step, manager.directory, reason)
      damaged.append(step)
      errors.append(f"step {step}: {reason}")
  if errors:
    raise CheckpointError(
        f"no checkpoint in {manager.directory} reads ({'; '.join(errors)}): expected at least "
        "one intact step; restore the directory from a backup, or start afresh in a new workdir.")
  return None, None, damaged


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
    step: which step; None: the newest that reads (a damaged newer step is skipped with a
      warning naming it).

  Returns:
    A `RestoredCheckpoint`. Networks are rebuilt from it with e.g.
    `{'params': ckpt.state['params']['deblur'], 'batch_stats': ckpt.state['batch_stats']['deblur']}`.
  """
  directory = epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))  # Orbax: absolute.
  if (directory / CHECKPOINT_DIR).is_dir():
    directory = directory / CHECKPOINT_DIR
  # The dataset handler is only named, so that Orbax recognises the item it is not asked for.
  handlers = {"state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler(),
              "digest": ocp.JsonCheckpointHandler(),
              "dataset": grain.checkpoint.CheckpointHandler()}
  with ocp.CheckpointManager(directory, item_handlers=handlers,
                             options=ocp.CheckpointManagerOptions(
                                 read_only=True, create=False, save_interval_steps=0)) as manager:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No training checkpoint under {os.fspath(path)}: expected a workdir written by "
          "`python train.py --workdir=...` (or its checkpoints/ directory).")
    if step is not None and step not in steps:
      raise ValueError(f"step {step} is not among the saved steps {sorted(steps)} of {directory}.")

    def args_of_step(step):
      metadata = manager.item_metadata(step).state
      # A NumPy target makes Orbax read to host memory, ignoring the writer's device shardings.
      target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                            getattr(metadata, "item_metadata", metadata),
                            is_leaf=_is_array_metadata)
      return ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                config=ocp.args.JsonRestore())

    if step is None:  # The newest that reads.
      step, restored, _ = _restore_newest_readable(manager, args_of_step)
    else:
      try:
        restored = manager.restore(step, args=args_of_step(step))
        _verify(manager, step, restored.state)
      except Exception as e:  # noqa: BLE001  As in _restore_newest_readable.
        raise CheckpointError(f"checkpoint step {step} in {directory} does not read "
                              f"({_reason(e)}): "
                              "expected an intact step; pass another --checkpoint step, or "
                              "the workdir for its newest intact one.") from None
  return RestoredCheckpoint(step=int(step), state=restored.state,
                            config=ml_collections.ConfigDict(restored.config))


def _reason(error: Exception) -> str:
  """The first line of `error`, without TensorStore's JSON spec of the store it was reading."""
  text = str(error).strip()
  return text.splitlines()[0].split(" [tensorstore_spec=")[0][:300] if text else repr(error)


def _is_array_metadata(node: Any) -> bool:
  return hasattr(node, "shape") and hasattr(node, "dtype")
