"""`python train.py` end to end on 2 CPU devices: resume after SIGKILL, NaN stop, outputs.

Runs configs/smoke.py (tiny DVD + FlowNetS, 32-pixel crops of the `tiny` synthetic set) in
subprocesses. The runs share a JAX compilation cache, so only the first compiles the step.
"""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from reblur_jax import checkpoint
from reblur_jax.data import prepare
from reblur_jax.training import restore_checkpoint

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 40
CHECKPOINT_EVERY = 4


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
  """Subprocess environment (2 CPU devices, shared compilation cache) and a prepared data dir."""
  data_dir = tmp_path_factory.mktemp("tfds")
  prepare.prepare("synthetic_blur", config="tiny_t7", data_dir=str(data_dir))
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
         "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache"))}
  return env, str(data_dir)


def _command(workdir, data_dir, *overrides):
  return [sys.executable, os.path.join(REPO, "train.py"), "--config=configs/smoke.py",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          f"--config.num_train_steps={STEPS}", f"--config.checkpoint_every_steps={CHECKPOINT_EVERY}",
          "--config.log_every_steps=4", f"--config.eval_every_steps={STEPS}", *overrides]


def _train(environment, workdir, *overrides):
  env, data_dir = environment
  return subprocess.run(_command(workdir, data_dir, *overrides), env=env, cwd=REPO,
                        capture_output=True, text=True, timeout=600)


def _steps(workdir):
  directory = workdir / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if directory.is_dir() else []


@pytest.fixture(scope="module")
def uninterrupted(environment, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  result = _train(environment, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[-1].startswith(f"Trained networks in {workdir}/variables;")
  assert "oneDNN" not in result.stderr  # TensorFlow writes the summaries, without its banner.
  return workdir


def test_killed_run_resumes_to_the_same_parameters(environment, uninterrupted, tmp_path):
  env, data_dir = environment
  workdir = tmp_path / "killed"
  process = subprocess.Popen(_command(workdir, data_dir), env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    while not _steps(workdir) and process.poll() is None:
      time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # Mid-run: right after its first checkpoint landed.
  finally:
    process.wait(timeout=60)
  assert process.returncode == -signal.SIGKILL
  killed_at = _steps(workdir)
  assert killed_at and killed_at[-1] < STEPS

  result = _train(environment, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Resumed from step" in result.stderr
  resumed, reference = restore_checkpoint(workdir), restore_checkpoint(uninterrupted)
  assert resumed.step == reference.step == STEPS
  jax.tree.map(np.testing.assert_array_equal, resumed.state, reference.state)


def test_checkpoint_written_on_two_devices_opens_as_numpy_here(uninterrupted):
  restored = restore_checkpoint(uninterrupted)
  assert restored.config.num_train_steps == STEPS
  assert set(restored.state["params"]) == {"deblur", "flow"}
  leaves = jax.tree.leaves(restored.state)
  assert leaves and all(isinstance(x, np.ndarray) for x in leaves)
  # The networks exported at the end match the last checkpoint.
  exported = checkpoint.load_variables(uninterrupted / "variables" / "deblur")
  jax.tree.map(np.testing.assert_array_equal, exported,
               {"params": restored.state["params"]["deblur"],
                "batch_stats": restored.state["batch_stats"]["deblur"]})
  with pytest.raises(ValueError, match="not among the saved steps"):
    restore_checkpoint(uninterrupted, step=STEPS + 1)


def test_run_writes_losses_learning_rate_progress_and_image_summaries(uninterrupted):
  events = event_accumulator.EventAccumulator(str(uninterrupted), size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  assert {"train/loss", "train/loss_supervised", "train/loss_reblur", "train/psnr",
          "train/psnr_reblur", "train/learning_rate", "steps_per_sec", "eval/psnr",
          "eval/ssim", "eval/psnr_reblur", "eval/blurry|deblurred|reblurred|sharp"} <= tags
  # Evaluation before the first step and after the last: the "before/after" of a fine-tuning.
  assert [e.step for e in events.Tensors("eval/psnr")] == [0, STEPS]


def test_nan_loss_stops_naming_the_step_and_the_last_good_checkpoint(environment, tmp_path):
  # A learning rate of 1e30 blows the weights up in one step: step 2's loss is NaN.
  result = _train(environment, tmp_path, "--config.learning_rate=1e30",
                  "--config.checkpoint_every_steps=1")
  assert result.returncode != 0
  message = result.stderr.strip().splitlines()[-1]
  assert "loss is nan at step 2" in message
  assert f"last good checkpoint is step 1 in {tmp_path / 'checkpoints'}" in message
  assert _steps(tmp_path) == [1]
