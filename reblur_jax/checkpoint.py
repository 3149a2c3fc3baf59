"""Networks and training runs on disk: the one place that reads and writes them (Orbax).

Two kinds of directory hold networks:

* a variables directory (`save_variables`): one network's Flax variables dict, `{'params': ...,
  'batch_stats': ...}`, and nothing else. The weight converters write one, training exports
  `<workdir>/variables/<network>` at the end, and a config's `init_checkpoint` names one;
* a training run (`python train.py --workdir=W`): an Orbax `CheckpointManager` under
  `W/checkpoints`, each step directory holding four items: `state` (the train state: params, BN
  statistics, optimiser state, step, RNG), `dataset` (the grain iterator's position, one file
  per process), `config` (the run's ConfigDict as JSON) and `digest` (a hash of the state's
  arrays: Orbax stores them without checksums, so garbled bytes would otherwise restore silently
  as other numbers).

`restore_run(path)` opens a run given as its workdir, `W/checkpoints` (the newest step that
reads) or one step `W/checkpoints/<step>`, or a shipped network: a variables directory `D/<name>`
whose `D/manifest.json` (written by `experiments/pretrained.py`, e.g. `pretrained/dvd`) records
the configs it was trained with; `load_network(path, name)` takes either kind. Both read to host
NumPy arrays, so a run written by N devices on M hosts opens in a 1-device notebook.

Saves are asynchronous; a step directory appears only once fully written, so a run killed at any
moment resumes from its last complete checkpoint. A step that is there but does not read (a file
truncated or garbled on disk) is skipped with a warning naming it: training resumes from the
newest step that reads, after moving the damaged one to `W/checkpoints_damaged/` (kept, never
deleted, out of the way of the step it will write again); reading for evaluation leaves it in
place.

Variables are compared with the shapes the module would initialise (`check_variables`) before
they are used, so a checkpoint of another model or width fails naming both, instead of deep
inside flax.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from flax import traverse_util
from jax.experimental import multihost_utils

PyTree = Any
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "checkpoints_damaged"  # Next to CHECKPOINT_DIR: steps that did not read.
MANIFEST = "manifest.json"  # Next to shipped variables directories: their training configs.
_CHECK_SIZE = 64  # Frame side used to derive the expected variable shapes (any size works).


class CheckpointError(OSError):
  """No checkpoint step reads; the message names each one and why."""


class DamagedCheckpointError(ValueError):
  """A step's arrays read, but differ from what was saved."""


class ModelMismatchError(ValueError):
  """Variables whose structure or shapes do not fit the network they are loaded into."""


# ----------------------------------------------------------------------------- one network


def network_variables(params: PyTree, batch_stats: PyTree, name: str) -> dict[str, PyTree]:
  """Network `name`'s Flax variables `{'params', 'batch_stats'?}` out of a train state's
  per-network `params` and `batch_stats` (the latter only for networks with BatchNorm)."""
  variables = {"params": params[name]}
  if name in batch_stats:
    variables["batch_stats"] = batch_stats[name]
  return variables


def save_variables(directory: str | os.PathLike, variables: PyTree, *, overwrite: bool = False) -> str:
  """Writes `variables` (a pytree of arrays) as an Orbax checkpoint at `directory`.

  Returns the absolute path. Refuses to replace an existing checkpoint unless `overwrite`.
  """
  path = os.path.abspath(os.fspath(directory))
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} already exists; choose another path or pass overwrite=True.")
  host = jax.tree.map(np.asarray, variables)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(path, host, force=overwrite)
    ckptr.wait_until_finished()
  return path


def variable_shapes(directory: str | os.PathLike) -> PyTree:
  """The pytree of a `save_variables` checkpoint as `jax.ShapeDtypeStruct`s, reading no arrays."""
  path = _existing(directory)
  with ocp.StandardCheckpointer() as ckptr:
    metadata = ckptr.metadata(path)
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype),
                      getattr(metadata, "item_metadata", metadata), is_leaf=_is_array_metadata)


def load_variables(directory: str | os.PathLike) -> PyTree:
  """Restores a checkpoint written by `save_variables` as a pytree of NumPy arrays."""
  path = _existing(directory)
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(path, _host_target(ckptr.metadata(path)))
  return jax.tree.map(np.asarray, restored)


def _existing(directory: str | os.PathLike) -> str:
  path = os.path.abspath(os.fspath(directory))
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"No checkpoint at {path}: expected a directory written by "
        "reblur_jax.checkpoint.save_variables or `python -m reblur_jax.models.convert`.")
  return path


def _host_target(metadata: Any) -> PyTree:
  """NumPy zeros shaped like Orbax's `metadata`: a target that makes Orbax read to host memory,
  ignoring the shardings of the devices that wrote the arrays."""
  return jax.tree.map(lambda m: np.zeros(m.shape, m.dtype),
                      getattr(metadata, "item_metadata", metadata), is_leaf=_is_array_metadata)


def _is_array_metadata(node: Any) -> bool:
  return hasattr(node, "shape") and hasattr(node, "dtype")


# ----------------------------------------------------------------------------- checking networks


def describe(name: str, kwargs: Mapping[str, Any]) -> str:
  """`dvd(frames=5, width=0.25)`: a model name with its constructor arguments."""
  return f"{name}({', '.join(f'{k}={v}' for k, v in sorted(dict(kwargs).items()))})"


def check_variables(module: nn.Module, variables: PyTree, *, source: str, model: str) -> None:
  """Raises `ModelMismatchError` unless `variables` fit `module` (same keys, same shapes).

  Args:
    module: a deblur network or FlowNetS.
    variables: `{'params': ..., 'batch_stats': ...}` as loaded (arrays or shape structs).
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


# ----------------------------------------------------------------------------- writing runs


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


def _read_only_manager(directory: epath.Path) -> ocp.CheckpointManager:
  """A manager that reads a run's `checkpoints` directory and never writes to it."""
  # Every item is named, so that Orbax recognises the ones a restore does not ask for.
  handlers = {"state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler(),
              "digest": ocp.JsonCheckpointHandler(),
              "dataset": grain.checkpoint.CheckpointHandler()}
  return ocp.CheckpointManager(directory, item_handlers=handlers,
                               options=ocp.CheckpointManagerOptions(
                                   read_only=True, create=False, save_interval_steps=0))


def saved_config(workdir: str | os.PathLike) -> dict[str, Any] | None:
  """The config (as saved: JSON values) of `workdir`'s newest checkpoint whose config reads, or
  None when `workdir` holds no training checkpoint. Reads nothing else and writes nothing."""
  directory = epath.Path(os.path.abspath(os.fspath(workdir))) / CHECKPOINT_DIR
  if not directory.is_dir():
    return None
  with _read_only_manager(directory) as manager:
    for step in sorted(manager.all_steps(), reverse=True):
      try:
        return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
                               ).config
      except Exception:  # noqa: BLE001  A damaged step: resuming moves it aside (restore_latest).
        continue
  return None


def state_digest(state: PyTree) -> str:
  """A hash of every array of `state`, independent of the pytree's container types and order
  (the train state restores as nested dicts for inference)."""
  leaves = sorted(hashlib.blake2b(
      f"{x.dtype}{x.shape}".encode() + np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
                  for x in map(np.asarray, jax.tree.leaves(jax.device_get(state))))
  return hashlib.blake2b(b"".join(leaves), digest_size=16).hexdigest()


def _verify(manager: ocp.CheckpointManager, step: int, state: PyTree) -> None:
  """Raises DamagedCheckpointError unless `state` hashes to the step's saved digest (if any)."""
  if not (epath.Path(manager.directory) / str(step) / "digest").exists():
    return  # Written before digests were saved.
  saved = manager.restore(step, args=ocp.args.Composite(digest=ocp.args.JsonRestore()))
  if saved.digest["state"] != state_digest(state):
    raise DamagedCheckpointError("its arrays differ from the saved digest (garbled on disk)")


def restore_latest(manager: ocp.CheckpointManager, abstract_state: PyTree,
                   data_iterator: Any) -> PyTree | None:
  """Restores the newest checkpoint into `abstract_state`'s structure and shardings, to resume.

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


def _reason(error: Exception) -> str:
  """The first line of `error`, without TensorStore's JSON spec of the store it was reading."""
  text = str(error).strip()
  return text.splitlines()[0].split(" [tensorstore_spec=")[0][:300] if text else repr(error)


# ----------------------------------------------------------------------------- reading runs


@dataclasses.dataclass(frozen=True)
class RestoredRun:
  """One step of a training run as host data.

  Attributes:
    path: what was opened (absolute).
    kind: what `path` was: "workdir" (a workdir or its `checkpoints` directory: the newest step
      that reads), "step" (one `checkpoints/<step>` directory) or "shipped" (a variables
      directory with a manifest; its state has no `opt_state`, `step` or `rng`).
    step: optimiser steps taken (a shipped network: over all its training stages).
    config: the run's configuration (a shipped network: its last stage's).
    state: the train state as nested dicts of NumPy arrays: `params` (`{'deblur': ..., 'flow':
      ...}`, the networks the run trains or uses), `batch_stats`, `opt_state`, `step`, `rng`.
  """
  path: str
  kind: str
  step: int
  config: ml_collections.ConfigDict
  state: dict[str, Any]

  @property
  def networks(self) -> tuple[str, ...]:
    """Names of the networks the run holds, e.g. `('deblur', 'flow')`."""
    return tuple(sorted(self.state["params"]))

  def variables(self, name: str) -> PyTree:
    """Network `name`'s (`'deblur'` or `'flow'`) `{'params', 'batch_stats'?}`.

    Raises:
      ModelMismatchError: the run has no such network.
    """
    if name not in self.state["params"]:
      raise ModelMismatchError(
          f"{self.path} holds no {name} network: its run (task={self.config.task!r}) trained "
          f"{list(self.networks)}. Pass a checkpoint of a run that has one.")
    return network_variables(self.state["params"], self.state.get("batch_stats", {}), name)


def is_run(path: str | os.PathLike) -> bool:
  """Whether `path` is a training workdir, its `checkpoints` directory or one of its steps."""
  path = os.fspath(path)
  return (os.path.isdir(os.path.join(path, CHECKPOINT_DIR))
          or os.path.basename(os.path.normpath(path)) == CHECKPOINT_DIR
          or _is_step(path))


def _is_step(path: str) -> bool:
  return os.path.basename(os.path.normpath(path)).isdigit() and os.path.isdir(
      os.path.join(path, "state"))


def restore_run(path: str | os.PathLike, step: int | None = None) -> RestoredRun:
  """Opens a training run's checkpoint on whatever devices this process has, as NumPy arrays.

  Args:
    path: a training workdir, its `checkpoints` directory, or one step `checkpoints/<step>`.
    step: which step of a workdir; None: the newest that reads (a damaged newer step is skipped
      with a warning naming it).

  Raises:
    FileNotFoundError: `path` does not exist or is not a training run.
    ValueError: `step` was not saved.
    CheckpointError: no step (or not the chosen one) reads.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))  # Orbax: absolute.
  if not os.path.isdir(path):
    raise FileNotFoundError(f"No checkpoint at {path}: expected a training workdir (`python "
                            "train.py --workdir=...`), one of its checkpoints/<step> folders "
                            "or a shipped network such as pretrained/dvd.")
  if not is_run(path) and (shipped := _shipped_entry(path)) is not None:
    if step is not None:
      raise ValueError(f"{path} is a shipped network, one set of weights: pass no step.")
    return _restore_shipped(path, shipped)
  kind = "workdir"
  directory = epath.Path(path)
  if _is_step(path):
    kind, step, directory = "step", int(directory.name), directory.parent
  elif (directory / CHECKPOINT_DIR).is_dir():
    directory = directory / CHECKPOINT_DIR
  with _read_only_manager(directory) as manager:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No training checkpoint under {path}: expected a workdir written by "
          "`python train.py --workdir=...` (or its checkpoints/ directory).")
    if step is not None and step not in steps:
      raise ValueError(f"step {step} is not among the saved steps {sorted(steps)} of {directory}.")

    def args_of_step(step):
      return ocp.args.Composite(
          state=ocp.args.StandardRestore(_host_target(manager.item_metadata(step).state)),
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
  return RestoredRun(path=path, kind=kind, step=int(step), state=restored.state,
                     config=ml_collections.ConfigDict(restored.config))


def _shipped_entry(path: str) -> dict[str, Any] | None:
  """`path`'s entry in the manifest next to it (`{'configs': [...], 'steps': [...], ...}`, one
  config and step count per training stage), or None if it has none."""
  manifest = os.path.join(os.path.dirname(path), MANIFEST)
  if not os.path.isfile(manifest):
    return None
  with open(manifest) as f:
    return json.load(f).get(os.path.basename(path))


def _restore_shipped(path: str, entry: dict[str, Any]) -> RestoredRun:
  config = ml_collections.ConfigDict(entry["configs"][-1])
  name = "deblur" if config.task == "deblur" else "flow"
  variables = load_variables(path)
  state = {"params": {name: variables["params"]},
           "batch_stats": {name: variables["batch_stats"]} if "batch_stats" in variables else {}}
  return RestoredRun(path=path, kind="shipped", step=int(sum(entry["steps"])), config=config,
                     state=state)


def load_network(path: str | os.PathLike, name: str = "deblur", *,
                 module: nn.Module | None = None, model: str = "") -> PyTree:
  """Variables of network `name` from a training run (`restore_run`) or a variables directory.

  With `module`, they are checked against it (`check_variables`; `model` names it).

  Raises:
    FileNotFoundError: nothing loadable at `path`.
    ModelMismatchError: the variables belong to another model or width.
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  variables = restore_run(path).variables(name) if is_run(path) else load_variables(path)
  if module is not None:
    check_variables(module, variables, source=path, model=model or name)
  return variables
