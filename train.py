r"""Trains a Reblur2Deblur model: `python train.py --config=configs/<run>.py --workdir=<dir>`.

  python train.py --config=configs/dvd_supervised.py:cpu --workdir=runs/dvd_supervised

Configs (`configs/`) say what each run reproduces; any field can be overridden, e.g.
`--config.alpha=0.2`, and `--config=configs/dvd_reblur.py:cpu` picks a variant. Rerunning the same
command resumes from the newest checkpoint in --workdir. Multi-host: add --distributed on every
host (SLURM, Open MPI and Cloud TPU are detected; elsewhere also pass --coordinator_address,
--num_processes and --process_id).
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from reblur_jax import console

_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints and summaries.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                          lock_config=True)
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (multi-host runs).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0, with --distributed.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes, with --distributed.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process, with --distributed.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  console.quiet()
  # Imported once the flags are parsed, so that --help and flag errors answer at once.
  import jax  # pylint: disable=g-import-not-at-top
  from reblur_jax import disk  # pylint: disable=g-import-not-at-top
  from reblur_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from reblur_jax.training import train  # pylint: disable=g-import-not-at-top
  from reblur_jax.training import validation  # pylint: disable=g-import-not-at-top

  if _DISTRIBUTED.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  logging.info("JAX process %d of %d, local devices %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  # User errors and a run that cannot go on: the message says what to do. Others are bugs.
  except validation.ConfigError as e:
    raise SystemExit(f"error: {e}") from None
  except (train.NonFiniteLossError, disk.DiskFullError, checkpoint.CheckpointError) as e:
    logging.error("%s", e)
    raise SystemExit(f"error: {e}") from None
  if jax.process_index() == 0:
    workdir = os.path.abspath(_WORKDIR.value)
    print(f"Trained networks in {os.path.join(workdir, train.VARIABLES_DIR)}; checkpoints and "
          f"TensorBoard summaries in {workdir}.")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
