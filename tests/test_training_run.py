"""`python train.py` end to end on 2 CPU devices: resume after SIGKILL anywhere and past a
damaged checkpoint, NaN stop, a full disk, outputs.

Runs configs/smoke.py (tiny DVD + FlowNetS, 32-pixel crops of the `tiny` synthetic set) in
subprocesses. The runs share a JAX compilation cache, so only the first compiles the step.
"""

import os
import random
import shutil
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

from conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow

STEPS = 20
CHECKPOINT_EVERY = 4


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
  """Subprocess environment (2 CPU devices, shared compilation cache) and a prepared data dir."""
  data_dir = tmp_path_factory.mktemp("tfds")
  prepare.prepare("synthetic_blur", config="tiny_t7", data_dir=str(data_dir))
  env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                       JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")))
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


def _temporary(workdir):
  """Step directories Orbax is still writing (renamed to the step number once complete)."""
  directory = workdir / "checkpoints"
  return [p.name for p in directory.iterdir() if "tmp" in p.name] if directory.is_dir() else []


def _kill_when(process, ready, timeout=300):
  """SIGKILLs `process` once `ready()`; returns False if it had ended by itself first."""
  deadline = time.monotonic() + timeout
  try:
    while process.poll() is None and not ready():
      assert time.monotonic() < deadline, "the run made no progress"
      time.sleep(0.002)
    if process.poll() is not None:
      return False
    process.send_signal(signal.SIGKILL)
  finally:
    process.wait(timeout=60)
  return True


def _assert_same_final_state(workdir, reference):
  resumed, reference = checkpoint.restore_run(workdir), checkpoint.restore_run(reference)
  assert resumed.step == reference.step == STEPS
  jax.tree.map(np.testing.assert_array_equal, resumed.state, reference.state)


def test_killed_run_resumes_past_a_damaged_checkpoint_to_the_same_parameters(
    environment, uninterrupted, tmp_path):
  env, data_dir = environment
  workdir = tmp_path / "killed"
  process = subprocess.Popen(_command(workdir, data_dir), env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  # Mid-run: right after its second checkpoint landed.
  assert _kill_when(process, lambda: len(_steps(workdir)) >= 2)
  killed_at = _steps(workdir)
  assert len(killed_at) >= 2 and killed_at[-1] < STEPS
  newest, previous = killed_at[-1], killed_at[-2]
  # The newest step's largest file, cut in half (a disk that lost its tail).
  damaged = max((p for p in (workdir / "checkpoints" / str(newest)).rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size)
  damaged.write_bytes(damaged.read_bytes()[:damaged.stat().st_size // 2])

  result = _train(environment, workdir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Checkpoint step {newest} in {workdir / 'checkpoints'} is damaged" in result.stderr
  assert f"Resumed from step {previous}" in result.stderr
  kept = workdir / checkpoint.DAMAGED_DIR / str(newest)
  assert (kept / damaged.relative_to(workdir / "checkpoints" / str(newest))).is_file()
  _assert_same_final_state(workdir, uninterrupted)


def test_killed_anywhere_again_and_again_ends_with_the_same_parameters(
    environment, uninterrupted, tmp_path):
  """SIGKILL while a checkpoint is written, right after one landed, or between steps, at 10
  points spread over the run; each time the same command is run again. Checkpoints every step
  (and deletes old ones)."""
  env, data_dir = environment
  workdir = tmp_path / "killed"
  command = _command(workdir, data_dir, "--config.checkpoint_every_steps=1")
  rng = random.Random(0)
  newest = lambda: (_steps(workdir) or [0])[-1]
  points = ("writing", "written", "between steps")
  targets = list(np.linspace(2, STEPS - 2, 10).round().astype(int))
  kills = []
  for index, target in enumerate(targets):
    point = points[index % len(points)]
    if point == "writing":  # A save of this step is under way (or was missed: the next one).
      ready = lambda: any(n.startswith(f"{target}.") for n in _temporary(workdir)) or (
          newest() > target)
    elif point == "written":
      ready = lambda: newest() >= target
    else:
      delay = rng.uniform(0.0, 0.3)
      ready = lambda: newest() >= target and (time.sleep(delay) or True)
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert _kill_when(process, ready), f"finished before the kill at step {target}"
    kills.append((point, target, newest(), bool(_temporary(workdir))))

  result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(kills) >= 10, kills
  # Some kills cut a checkpoint write short: its temporary directory was left behind.
  assert sum(interrupted_save for *_, interrupted_save in kills) >= 2, kills
  # Interrupted saves left nothing that counts as a step (Orbax clears its temporaries).
  entries = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  assert all(name.isdigit() for name in entries), entries
  assert checkpoint.restore_run(workdir).step == STEPS
  _assert_same_final_state(workdir, uninterrupted)


def test_checkpoint_written_on_two_devices_opens_as_numpy_here(uninterrupted):
  restored = checkpoint.restore_run(uninterrupted)
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
    checkpoint.restore_run(uninterrupted, step=STEPS + 1)


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


def _garble(step_dir):
  """Flips bytes in the middle of the step's largest array file: it still opens, with other
  numbers, which only the saved digest reveals."""
  path = max((p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
             key=lambda p: p.stat().st_size)
  data = bytearray(path.read_bytes())
  data[len(data) // 2:len(data) // 2 + 16] = bytes(b ^ 0xFF for b in data[len(data) // 2:][:16])
  path.write_bytes(bytes(data))


def test_restoring_skips_a_damaged_newest_step_and_never_deletes_it(uninterrupted, tmp_path,
                                                                     caplog):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted / "checkpoints", workdir / "checkpoints")
  steps = _steps(workdir)
  intact = checkpoint.restore_run(workdir, step=steps[-2])
  _garble(workdir / "checkpoints" / str(steps[-1]))

  restored = checkpoint.restore_run(workdir)  # As evaluate.py and deblur open a run.
  assert restored.step == steps[-2]
  jax.tree.map(np.testing.assert_array_equal, restored.state, intact.state)
  assert f"Checkpoint step {steps[-1]} in {workdir / 'checkpoints'} is damaged" in caplog.text
  assert _steps(workdir) == steps
  with pytest.raises(checkpoint.CheckpointError, match=f"checkpoint step {steps[-1]} in .* "
                     "does not read .*digest.*pass another --checkpoint step"):
    checkpoint.restore_run(workdir, step=steps[-1])
  for step in steps[:-1]:
    _garble(workdir / "checkpoints" / str(step))
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint in .* reads"):
    checkpoint.restore_run(workdir)


# Disk full while step 8's checkpoint is written: its JSON items fail with ENOSPC.
_DISK_FULL_FROM_STEP_8 = """
import errno, re, runpy, sys
import orbax.checkpoint as ocp
save = ocp.JsonCheckpointHandler._save_fn
async def full_disk(self, x, directory):
  if int(re.search(r"/(\\d+)(?:[.][^/]*)?/[^/]+$", str(directory)).group(1)) >= 8:
    raise OSError(errno.ENOSPC, "No space left on device", str(directory))
  return await save(self, x, directory)
ocp.JsonCheckpointHandler._save_fn = full_disk
runpy.run_path("train.py", run_name="__main__")
"""


def test_a_full_disk_while_checkpointing_is_an_error_that_keeps_the_last_checkpoint(
    environment, uninterrupted, tmp_path):
  env, data_dir = environment
  command = _command(tmp_path, data_dir)
  result = subprocess.run([sys.executable, "-c", _DISK_FULL_FROM_STEP_8, *command[2:]], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr[-3000:]
  message = result.stderr.strip().splitlines()[-1]
  assert message.startswith("error: no space left on device while checkpointing"), message
  assert f"the last complete one is step 4 in {tmp_path / 'checkpoints'}, intact" in message
  assert _steps(tmp_path) == [4]
  restored = checkpoint.restore_run(tmp_path)  # Reads, and matches its saved digest.
  assert restored.step == 4
