"""One training step of configs/smoke.py on a fixed global batch, for the device-count tests.

Run as a script, in a fresh process, because the device count is fixed when JAX starts:

  # One process with 4 CPU devices; the step on a mesh of the first 1 and of all 4 devices:
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python tests/training_step_worker.py OUT_DIR --mesh_sizes=1,4
  # Process i of two, 2 devices each, coordinator on localhost:PORT; the step on all 4:
  python tests/training_step_worker.py OUT_DIR --process_id=i --num_processes=2 --port=PORT

Every process builds the same global batch from a fixed seed and feeds its own contiguous slice
of it, as a multi-host input pipeline would. Process 0 writes, per mesh, the updated parameters,
Adam's moments and the step's metrics to OUT_DIR/<processes>x<devices>.npz.
"""

import argparse
import os
import sys

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("out_dir")
  parser.add_argument("--mesh_sizes", default="", help="Comma-separated; default: all devices.")
  parser.add_argument("--process_id", type=int, default=0)
  parser.add_argument("--num_processes", type=int, default=1)
  parser.add_argument("--port", type=int, default=0)
  parser.add_argument("--local_devices", type=int, default=2)
  args = parser.parse_args()
  if args.num_processes > 1:
    jax.config.update("jax_num_cpu_devices", args.local_devices)
    jax.distributed.initialize(coordinator_address=f"localhost:{args.port}",
                               num_processes=args.num_processes, process_id=args.process_id)

  sys.path.insert(0, REPO)
  from configs import smoke
  from reblur_jax.training import sharding
  from reblur_jax.training import state as state_lib
  from reblur_jax.training import train

  config = smoke.get_config()
  networks = state_lib.create_networks(config)
  sizes = [int(n) for n in args.mesh_sizes.split(",")] if args.mesh_sizes else [jax.device_count()]
  for size in sizes:
    mesh = sharding.create_mesh(jax.devices()[:size])
    run = train.create_run(config, networks, mesh, steps_per_epoch=10)
    batch = sharding.global_batch(local_slice(fixed_batch(config, run.clip_length)), mesh)
    state, metrics = run.train_step(run.state, batch)
    # After one Adam step the moments hold the gradient itself, which the parameters (moved by
    # ~lr * sign(gradient)) would hide.
    leaves = jax.tree_util.tree_flatten_with_path(
        jax.device_get((state.params, state.opt_state)))[0]
    if jax.process_index() == 0:
      np.savez(os.path.join(args.out_dir, f"{jax.process_count()}x{size}.npz"),
               **{"state" + jax.tree_util.keystr(path): value for path, value in leaves},
               **{f"metric/{k}": v for k, v in jax.device_get(metrics).items()})


def fixed_batch(config, clip_length):
  """The global batch: labeled and unlabeled clips `[B, T, 32, 32, 3]` in [0, 1], seed 0."""
  rng = np.random.default_rng(0)
  unlabeled = round(config.batch_size * config.unlabeled_fraction)
  shape = (clip_length, config.crop_size, config.crop_size, 3)
  clip = lambda n: rng.uniform(size=(n, *shape)).astype(np.float32)
  labeled = config.batch_size - unlabeled
  return {"labeled": {"blurry": clip(labeled), "sharp": clip(labeled)},
          "unlabeled": {"blurry": clip(unlabeled)}}


def local_slice(batch):
  """This process's contiguous share of every group of the global batch."""
  def part(x):
    size = x.shape[0] // jax.process_count()
    return x[jax.process_index() * size:(jax.process_index() + 1) * size]
  return jax.tree.map(part, batch)


if __name__ == "__main__":
  main()
