"""Data parallelism over every device of every host: one mesh axis, `data`.

Steps are written pmap-style: a per-device function sees its shard of the batch and the whole
(replicated) train state, and averages gradients and metrics explicitly with
`jax.lax.pmean(..., DATA_AXIS)`. `data_parallel` runs such a function with `jax.shard_map` under
`jax.jit` on a mesh of all devices, which is what `jax.pmap` itself is built on now; unlike pmap
it takes and returns ordinary global `jax.Array`s, so the same code runs on one CPU, eight GPUs
or many hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

PyTree = Any
DATA_AXIS = "data"


def create_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh, axis `data`, over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  # Auto axes let jit move host (numpy) inputs onto the mesh; Explicit ones would refuse them.
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Every device holds the whole array (train state, metrics)."""
  return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
  """The leading (batch) axis is split over `data`; each device holds a contiguous slice."""
  return NamedSharding(mesh, P(DATA_AXIS))


def data_parallel(per_device_fn: Callable[..., Any], mesh: jax.sharding.Mesh, *,
                  batch_argnums: tuple[int, ...], donate_argnums: tuple[int, ...] = ()):
  """Jits a pmap-style function to run on every device of `mesh`.

  Args:
    per_device_fn: `f(*args) -> outputs`; the arguments at `batch_argnums` are pytrees whose
      leaves are this device's slice of the global batch; the others are replicated. Its outputs
      must be identical on every device (pmean'd or computed from replicated values).
    mesh: a mesh with a `data` axis (`create_mesh`).
    batch_argnums: positions of the batch arguments.
    donate_argnums: positions whose buffers the caller gives up (the train state).

  Returns:
    A jitted function of global arrays returning replicated global arrays.
  """
  def wrapped(*args):
    in_specs = tuple(P(DATA_AXIS) if i in batch_argnums else P() for i in range(len(args)))
    # check_vma=False keeps pmap's semantics: gradients of replicated parameters stay per-device
    # until the explicit pmean. With it on, JAX would psum them itself in the transpose of the
    # implicit broadcast, and the pmean would then average already-summed gradients.
    return jax.shard_map(per_device_fn, mesh=mesh, in_specs=in_specs, out_specs=P(),
                         check_vma=False)(*args)
  return jax.jit(wrapped, donate_argnums=donate_argnums)


def global_batch(local_batch: PyTree, mesh: jax.sharding.Mesh) -> PyTree:
  """Assembles every process's host batch (numpy, leading axis = local batch) into global arrays.

  Process i's rows become rows [i * local, (i + 1) * local) of the global batch, split over its
  own devices. With one process this is a plain device transfer.
  """
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def check_divisible(sizes: dict[str, int], num_devices: int) -> None:
  """Raises ValueError unless each named global batch size divides by the device count.

  Every device must hold the same number of labeled and of unlabeled clips so that each computes
  both loss terms and the pmean of per-device means is the global mean.
  """
  bad = {name: size for name, size in sizes.items() if size % num_devices}
  if bad:
    listing = ", ".join(f"{name} = {size}" for name, size in bad.items())
    raise ValueError(
        f"{listing} not divisible by the {num_devices} devices ({jax.process_count()} "
        f"process(es)): each device needs the same number of clips of each kind. Choose "
        f"config.batch_size and config.unlabeled_fraction so that each part is a multiple of "
        f"{num_devices}.")
