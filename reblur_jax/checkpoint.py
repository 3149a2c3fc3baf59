"""Network variables on disk: one Orbax checkpoint holding a Flax variables dict.

This is the `init_checkpoint` format shared by the weight converters, training and notebooks:
`{'params': ..., 'batch_stats': ...}` (whatever collections the model has), saved with Orbax's
standard handler and restored as host NumPy arrays, so it opens on any device count.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any


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
    metadata = ckptr.metadata(path)
    tree = getattr(metadata, "item_metadata", metadata)
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree, is_leaf=_is_array_metadata)
    restored = ckptr.restore(path, target)
  return jax.tree.map(np.asarray, restored)


def _existing(directory: str | os.PathLike) -> str:
  path = os.path.abspath(os.fspath(directory))
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"No checkpoint at {path}: expected a directory written by "
        "reblur_jax.checkpoint.save_variables or `python -m reblur_jax.models.convert`.")
  return path


def _is_array_metadata(node: Any) -> bool:
  return hasattr(node, "shape") and hasattr(node, "dtype")
