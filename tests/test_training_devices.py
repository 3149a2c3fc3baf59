"""Data parallelism: one step on 1 device == on 4 devices == on 2 processes x 2 devices.

`training_step_worker.py` runs the steps in fresh processes (the device count is fixed when JAX
starts): one process with 4 CPU devices takes the step on a mesh of 1 device and of all 4, and
two processes with 2 devices each take it together. The step is configs/smoke.py's DVD-Reblur step with 4 labeled + 4 unlabeled clips, so every
device's shard holds both kinds. The comparison covers the parameters, Adam's moments (which hold
the gradient itself: after one Adam step the parameters move by about lr * sign(gradient), so
they alone would not see a gradient summed instead of averaged) and the step's metrics.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env

pytestmark = pytest.mark.slow

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training_step_worker.py")


def _start(out_dir, cache_dir, *args, devices=None):
  # The processes share compiled programs (the networks' initialisers) through the cache.
  env = subprocess_env(JAX_COMPILATION_CACHE_DIR=str(cache_dir))
  env.pop("XLA_FLAGS", None)
  if devices:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return subprocess.Popen([sys.executable, WORKER, str(out_dir), *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(processes):
  for process in processes:
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
  """`{'1x1': ..., '1x4': ..., '2x4': ...}` (processes x devices): each saved step."""
  tmp = tmp_path_factory.mktemp("steps")
  cache = tmp_path_factory.mktemp("jax_cache")
  _finish([_start(tmp, cache, "--mesh_sizes=1,4", devices=4)])
  port = str(_free_port())
  _finish([_start(tmp, cache, f"--process_id={i}", "--num_processes=2", f"--port={port}")
           for i in range(2)])
  return {name: dict(np.load(tmp / f"{name}.npz")) for name in ("1x1", "1x4", "2x4")}


def _assert_same_step(reference, other):
  assert set(reference) == set(other)
  for key, expected in reference.items():
    actual = other[key]
    if key.startswith("metric/"):
      np.testing.assert_allclose(actual, expected, rtol=1e-5, err_msg=key)
    elif ".mu" in key or ".nu" in key:
      # Moments are ~1e-4 (mu) and ~1e-9 (nu): compare relative to each array's scale.
      np.testing.assert_allclose(actual, expected, rtol=0,
                                 atol=1e-4 * np.abs(expected).max(), err_msg=key)
    elif key.startswith("state"):
      np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5, err_msg=key)


def test_four_devices_take_the_same_step_as_one(steps):
  _assert_same_step(steps["1x1"], steps["1x4"])


def test_two_processes_take_the_same_step_as_one_process_with_four_devices(steps):
  _assert_same_step(steps["1x4"], steps["2x4"])


def test_the_step_changes_parameters_and_logs_both_losses(steps):
  """Guards the comparisons above against a step that does nothing."""
  step = steps["1x1"]
  assert step["metric/loss_supervised"] > 0 and step["metric/loss_reblur"] > 0
  moments = [v for k, v in step.items() if ".mu" in k]
  assert moments and all(np.abs(m).max() > 0 for m in moments)
