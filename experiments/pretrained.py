r"""Trains the thin networks that ship in `pretrained/` and that `make demo` starts from.

  make pretrained                                       # = the command below
  python -m experiments.pretrained --workdir=runs/pretrained --output=pretrained

Runs of the repo's own `:cpu` configs on the embedded `study` synthetic set, longer than the demo
could afford (`NETWORKS`), each resumable: FlowNetS on ground-truth flow, the supervised DVD
baseline and the supervised DeblurGAN baseline, all 1/4 wide. Each run is evaluated on the
validation split (never on test) while it trains. At the end each network's variables replace
`<output>/<name>` (the `init_checkpoint` format) and `<output>/manifest.json` records, per
network, the config, the steps, the wall time, a fingerprint of the initial parameters (so that a
test can check that the configs still start where these weights started) and the validation
scores. Nothing else is written to `<output>`; retraining replaces the files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app
from absl import flags

from configs import deblurgan_supervised
from configs import dvd_supervised
from configs import flownets_pretrain
from reblur_jax.training import state as state_lib
from reblur_jax.training import train


# name -> (config module, the run's variables entry, training steps).
NETWORKS = {
    "flownets": (flownets_pretrain, "flow", 1500),
    "dvd": (dvd_supervised, "deblur", 10000),
    "deblurgan": (deblurgan_supervised, "deblur", 3000),
}
# Epochs (96 steps each on `study`) from which the rate halves: the `:cpu` configs keep it
# constant for their short runs, but a long run ends on a lower rate (docs/baselines.md, run D).
LR_DECAY_EPOCHS = {"dvd": (60.0, 80.0, 95.0)}
MANIFEST = "manifest.json"


def config_for(name: str) -> ml_collections.ConfigDict:
  """The `:cpu` config of network `name`, run for `NETWORKS[name]`'s steps and evaluated on the
  validation split."""
  module, _, steps = NETWORKS[name]
  config = module.get_config("cpu")
  config.num_train_steps = steps
  config.lr_decay_epochs = LR_DECAY_EPOCHS.get(name, ())
  config.eval_split = "validation"
  config.eval_every_steps = steps // 4
  config.checkpoint_every_steps = steps // 10
  config.log_every_steps = 50
  return config


def init_fingerprint(config: ml_collections.ConfigDict) -> list[float]:
  """Sum and sum of squares of the trained network's initial parameters, per `config`."""
  networks = state_lib.create_networks(config)
  variables = state_lib.init_variables(networks, config)
  leaves = jax.tree.leaves(variables["deblur" if config.task == "deblur" else "flow"]["params"])
  flat = np.concatenate([np.asarray(leaf, np.float64).ravel() for leaf in leaves])
  return [float(flat.sum()), float(np.square(flat).sum())]


def train_network(name: str, workdir: str, output: str) -> dict[str, Any]:
  """Trains (or finishes) network `name`, copies its variables to `<output>/<name>`."""
  _, entry, steps = NETWORKS[name]
  config = config_for(name)
  run_dir = os.path.join(workdir, name)
  start = time.time()
  train.train_and_evaluate(config, run_dir)
  seconds = time.time() - start
  target = os.path.join(output, name)
  if os.path.exists(target):
    shutil.rmtree(target)
  shutil.copytree(os.path.join(run_dir, train.VARIABLES_DIR, entry), target)
  return {"config": config.to_dict(), "steps": steps, "seconds": round(seconds),
          "init_fingerprint": init_fingerprint(config)}


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  names = flags.FLAGS.only or list(NETWORKS)
  unknown = sorted(set(names) - set(NETWORKS))
  if unknown:
    raise app.UsageError(f"--only: unknown network(s) {unknown}; choose from {list(NETWORKS)}.")
  os.makedirs(flags.FLAGS.output, exist_ok=True)
  path = os.path.join(flags.FLAGS.output, MANIFEST)
  manifest = {}
  if os.path.exists(path):
    with open(path) as f:
      manifest = json.load(f)
  for name in names:
    manifest[name] = train_network(name, flags.FLAGS.workdir, flags.FLAGS.output)
    with open(path, "w") as f:
      json.dump(manifest, f, indent=1, sort_keys=True, default=list)
  print(f"Pretrained networks in {flags.FLAGS.output}/ ({', '.join(names)}); manifest {path}.")


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_string("workdir", "runs/pretrained", "Where the training runs go.")
  flags.DEFINE_string("output", "pretrained", "Where the variables and manifest go.")
  flags.DEFINE_list("only", None, "Train only these networks (default: all).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
