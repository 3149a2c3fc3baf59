"""What several test files share: the repository root, the subprocess environment, and the tiny
fine-tuned run (`tiny_run`) that evaluation, the deblur command and the notebook are tested on.

The tiny run: a randomly initialised DVD (width 1/16) saved as the baseline, fine-tuned for 2
steps by configs/smoke.py's DVD-Reblur run (with FlowNetS) on the `tiny_t7` synthetic set, all in
the session's temporary directory, trained once per session (under xdist, once for all workers).

Multi-process tests are marked `slow` (pyproject.toml): `pytest -m "not slow"` leaves them out
for a quick loop; `make test` runs them all.
"""

import dataclasses
import fcntl
import functools
import os
import pathlib

import jax
import numpy as np
import pytest

from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.training import train

from configs import smoke

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(**extra: str) -> dict[str, str]:
  """This process's environment for a subprocess on the CPU, TensorFlow quiet, plus `extra`."""
  return {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def once_per_session(tmp_path_factory, name: str, build) -> pathlib.Path:
  """Runs `build(directory)` once per test session and returns `directory`.

  Under xdist the workers share the session's base directory, and a lock makes one of them
  build while the others wait for it.
  """
  base = tmp_path_factory.getbasetemp()
  directory = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
  directory.mkdir(exist_ok=True)
  with open(directory / ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (directory / ".done").exists():
      build(directory)
      (directory / ".done").touch()
  return directory


@dataclasses.dataclass(frozen=True)
class TinyRun:
  workdir: str  # The fine-tuned run.
  baseline: str  # Its init_checkpoint (variables directory).
  data_dir: str  # TFDS data dir holding synthetic_blur/tiny_t7.

  @classmethod
  def at(cls, root: pathlib.Path) -> "TinyRun":
    return cls(str(root / "run"), str(root / "baseline"), str(root / "tfds"))


def _train_tiny_run(run: TinyRun) -> None:
  config = smoke.get_config()
  config.data_dir = run.data_dir
  config.num_train_steps = config.checkpoint_every_steps = config.eval_every_steps = 2
  module = models.create(config.model, **config.model_kwargs)
  clip = np.zeros((1, module.num_input_frames, 32, 32, 3), np.float32)
  init = jax.jit(functools.partial(module.init, train=False))
  checkpoint.save_variables(run.baseline, init(jax.random.key(1), clip))
  config.init_checkpoint = run.baseline
  train.train_and_evaluate(config, run.workdir)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
  """The tiny run (module docstring)."""
  return TinyRun.at(once_per_session(tmp_path_factory, "tiny_run",
                                     lambda root: _train_tiny_run(TinyRun.at(root))))
