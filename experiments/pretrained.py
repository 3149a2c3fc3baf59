r"""Trains the thin networks that ship in `pretrained/` and that `make demo` starts from.

  make pretrained                                       # = the command below
  python -m experiments.pretrained --workdir=runs/pretrained --output=pretrained

Runs of the repo's own `:cpu` configs on the embedded synthetic sets, longer than the demo
could afford (`NETWORKS`), each resumable: FlowNetS on ground-truth flow, the supervised DVD
baseline (two stages: `study`, then `study_mixed`'s broader blur) and the supervised DeblurGAN
baseline, all 1/4 wide. Each run is evaluated on the validation split (never on test) while it
trains. At the end each network's variables replace `<output>/<name>` (the `init_checkpoint`
format) and `<output>/manifest.json` records, per network, the config and steps of each stage,
the wall time and a fingerprint of the initial parameters (so that a test can check that the
configs still start where these weights started). Nothing else is written to `<output>`;
retraining replaces the files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import types
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
from reblur_jax import checkpoint
from reblur_jax.training import state as state_lib
from reblur_jax.training import train


@dataclasses.dataclass(frozen=True)
class Stage:
  """One training run of a shipped network: the `:cpu` variant of a `configs/` module, changed
  as given. A later stage starts from the previous stage's variables."""
  config: types.ModuleType
  steps: int
  # Epochs (96 steps each on `study`) from which the rate halves: the `:cpu` configs keep it
  # constant for their short runs, but a long run ends on a lower rate (docs/baselines.md).
  lr_decay_epochs: tuple[float, ...] = ()
  learning_rate: float | None = None  # None: the config's.
  dataset: str | None = None  # The labeled and evaluation set; None: the config's.
  cut_probability: float | None = None  # None: the config's.


# name -> (the run's variables entry, its stages).
NETWORKS = {
    "flownets": ("flow", (Stage(flownets_pretrain, 1500),)),
    # `study`, then its broader training blur (mild and none, half in linear light) with scene
    # cuts, which keep the network from sharpening mild real blur too much and from pasting
    # neighbours it cannot align into the frame (docs/baselines.md, runs D, E and G). The first
    # stage ran before cut augmentation existed.
    "dvd": ("deblur", (Stage(dvd_supervised, 10000, lr_decay_epochs=(60.0, 80.0, 95.0),
                             cut_probability=0.0),
                       Stage(dvd_supervised, 3000, lr_decay_epochs=(16.0, 24.0, 29.0),
                             learning_rate=1e-3, dataset="synthetic_blur/study_mixed_t7"))),
    "deblurgan": ("deblur", (Stage(deblurgan_supervised, 3000),)),
}
MANIFEST = checkpoint.MANIFEST


def run_dir(workdir: str, name: str, stage: int) -> str:
  """Where stage `stage` (from 0) of network `name` trains."""
  return os.path.join(workdir, name if stage == 0 else f"{name}_stage{stage + 1}")


def config_for(name: str, stage: int = 0, workdir: str = "runs/pretrained"
               ) -> ml_collections.ConfigDict:
  """The config of stage `stage` of network `name` (`NETWORKS`), evaluated on the validation
  split; a later stage's `init_checkpoint` is the previous stage's variables under `workdir`."""
  entry, stages = NETWORKS[name]
  spec = stages[stage]
  config = spec.config.get_config("cpu")
  config.num_train_steps = spec.steps
  config.lr_decay_epochs = spec.lr_decay_epochs
  if spec.learning_rate is not None:
    config.learning_rate = spec.learning_rate
  if spec.dataset is not None:
    config.labeled_dataset = config.eval_dataset = spec.dataset
  if spec.cut_probability is not None:
    config.cut_probability = spec.cut_probability
  if stage:
    config.init_checkpoint = os.path.join(run_dir(workdir, name, stage - 1), train.VARIABLES_DIR,
                                          entry)
  config.eval_split = "validation"
  config.eval_every_steps = spec.steps // 4
  config.checkpoint_every_steps = spec.steps // 10
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
  """Trains (or finishes) each stage of network `name`, copies the last stage's variables to
  `<output>/<name>`."""
  entry, stages = NETWORKS[name]
  configs, seconds = [], 0.0
  for stage in range(len(stages)):
    config = config_for(name, stage, workdir)
    start = time.time()
    train.train_and_evaluate(config, run_dir(workdir, name, stage))
    seconds += time.time() - start
    configs.append(config.to_dict())
  target = os.path.join(output, name)
  if os.path.exists(target):
    shutil.rmtree(target)
  shutil.copytree(os.path.join(run_dir(workdir, name, len(stages) - 1), train.VARIABLES_DIR,
                               entry), target)
  return {"configs": configs, "steps": [stage.steps for stage in stages],
          "seconds": round(seconds), "init_fingerprint": init_fingerprint(config_for(name))}


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
