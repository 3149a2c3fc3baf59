"""Released-weight import: PyTorch originals with random weights -> converter -> same outputs.

The reference networks (tests/torch_reference.py) are rebuilt from the authors' code, thin
(width 0.125) so the suite stays fast; the state dicts have the released files' key names.
"""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jax
from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.models import convert
from reblur_jax.models import flownet

import torch_reference
from conftest import REPO, subprocess_env

WIDTH = 0.125
ATOL = 1e-4


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
  return np.moveaxis(t.detach().numpy(), 1, -1)


def _state_dict(module):
  return {k: v.numpy() for k, v in module.state_dict().items()}


def _randomize_batch_norms(module, seed):
  """Non-trivial BN statistics and affine parameters, so a mix-up between them shows."""
  g = torch.Generator().manual_seed(seed)
  for m in module.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      n = m.num_features
      m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
      m.running_var.copy_(0.5 + torch.rand(n, generator=g))
      m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
      m.bias.data.copy_(0.1 * torch.randn(n, generator=g))


@pytest.fixture(scope="module")
def deblurgan_ref():
  torch.manual_seed(0)
  return torch_reference.ResnetGenerator(WIDTH).eval()


@pytest.fixture(scope="module")
def flownets_ref():
  torch.manual_seed(1)
  return torch_reference.FlowNetS(WIDTH)


@pytest.fixture(scope="module")
def dvd_ref():
  torch.manual_seed(2)
  ref = torch_reference.DVD(frames=5, width=WIDTH)
  with torch.no_grad():
    _randomize_batch_norms(ref, 3)
  return ref.eval()


def _dvd_release(ref):
  """The Torch7 release's three arrays, made from the reference's parameters in graph order."""
  flat = torch.cat([p.detach().reshape(-1) for p in ref.parameters()]).numpy()
  bns = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  return flat, [m.running_mean.numpy() for m in bns], [m.running_var.numpy() for m in bns]


@pytest.fixture(scope="module")
def flownets_variables(flownets_ref):
  return convert.flownets_variables(
      {"arch": "flownets", "state_dict": _state_dict(flownets_ref), "div_flow": 20.0},
      width=WIDTH)


def test_deblurgan_matches_pytorch(deblurgan_ref):
  state = _state_dict(deblurgan_ref)
  # The released file (PyTorch 0.3) also holds InstanceNorm running buffers; they are not used.
  state["model.2.running_mean"] = np.zeros(8, np.float32)
  state["model.10.conv_block.2.running_var"] = np.ones(32, np.float32)
  variables = convert.deblurgan_variables(state, width=WIDTH)
  x = np.random.default_rng(0).random((2, 1, 32, 48, 3), np.float32)
  ours = models.create("deblurgan", width=WIDTH).apply(variables, x)
  with torch.no_grad():
    theirs = deblurgan_ref(_nchw(2 * x[:, 0] - 1))
  np.testing.assert_allclose(2 * np.asarray(ours) - 1, _nhwc(theirs), atol=ATOL)


def _documented_mean(filename):
  """The mean docs/models.md records for a released FlowNetS file (its checkpoint table)."""
  text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
  row = re.search(rf"^\| `{re.escape(filename)}` \|.*?`\(([-\d., ]+)\)`", text, re.MULTILINE)
  assert row, f"docs/models.md has no mean for {filename}"
  return np.asarray([float(v) for v in row.group(1).split(",")], np.float32)


def test_flownets_matches_pytorch_at_every_scale(flownets_ref, flownets_variables):
  """The original fed the images minus the mean docs/models.md gives for flownets_EPE1.951 (from
  FlowNetPytorch's history): changing the model's mean or that table alone fails here."""
  first, second = np.random.default_rng(1).random((2, 2, 64, 128, 3), np.float32)
  model = models.create("flownets", width=WIDTH)
  ours = model.apply(flownets_variables, first, second, multiscale=True)
  mean = _documented_mean("flownets_EPE1.951.pth.tar")
  with torch.no_grad():
    theirs = flownets_ref.train()(_nchw(np.concatenate([first - mean, second - mean], -1)))
  assert len(ours) == len(theirs) == 5
  for k, (a, b) in enumerate(zip(ours, theirs), start=2):
    assert a.shape == (2, 64 // 2**k, 128 // 2**k, 2)
    np.testing.assert_allclose(a, _nhwc(b), atol=ATOL, rtol=1e-4, err_msg=f"flow{k}")


@pytest.mark.parametrize("size", [(64, 128), (50, 70)])
def test_flownets_full_resolution_flow_is_the_originals_inference(flownets_ref, flownets_variables,
                                                                  size):
  """Pixels = DIV_FLOW x bilinear (half-pixel) upsampling of flow2, channel 0 along x, as
  FlowNetPytorch's run_inference computes it; sizes off the /64 grid are zero-padded (after the
  mean) and cropped.

  The flow's direction (`first(p) ~= second(p + flow(p))`) belongs to the trained weights and
  cannot show with random ones; what is checked is that nothing between the released tensors and
  our output flips, swaps or rescales it: same input order, same channels, same scale.
  """
  height, width = size
  first, second = np.random.default_rng(2).random((2, 1, height, width, 3), np.float32)
  ours = models.create("flownets", width=WIDTH).apply(flownets_variables, first, second)
  mean = np.asarray(flownet.MEAN_RGB, np.float32)
  stacked = np.concatenate([first - mean, second - mean], -1)
  padded = np.pad(stacked, ((0, 0), (0, -height % 64), (0, -width % 64), (0, 0)))
  with torch.no_grad():
    flow2 = flownets_ref.eval()(_nchw(padded))
    full = flownet.DIV_FLOW * F.interpolate(flow2, size=padded.shape[1:3], mode="bilinear",
                                            align_corners=False)
  assert ours.shape == (1, height, width, 2)
  np.testing.assert_allclose(ours, _nhwc(full)[:, :height, :width], atol=20 * ATOL, rtol=1e-4)


@pytest.mark.parametrize("size", [(32, 48), (30, 37)])
def test_dvd_flat_vector_matches_pytorch(dvd_ref, size):
  """The Torch7 vector split in graph order; odd sizes zero-padded at the bottom/right to /8 and
  cropped, as the original's inference.lua does."""
  height, width = size
  variables = convert.dvd_variables(*_dvd_release(dvd_ref), width=WIDTH)
  x = np.random.default_rng(3).random((2, 5, height, width, 3), np.float32)
  ours = models.create("dvd", width=WIDTH).apply(variables, x)
  stack = np.moveaxis(x, 1, 3).reshape(2, height, width, 15)
  stack = np.pad(stack, ((0, 0), (0, -height % 8), (0, -width % 8), (0, 0)))
  with torch.no_grad():
    theirs = _nhwc(dvd_ref(_nchw(stack)))[:, :height, :width]
  np.testing.assert_allclose(ours, theirs, atol=ATOL)


def test_dvd_train_mode_normalises_like_pytorch(dvd_ref):
  variables = convert.dvd_variables(*_dvd_release(dvd_ref), width=WIDTH)
  x = np.random.default_rng(4).random((2, 5, 32, 32, 3), np.float32)
  ours, _ = models.create("dvd", width=WIDTH).apply(variables, x, train=True,
                                                    mutable=["batch_stats"])
  stack = np.moveaxis(x, 1, 3).reshape(2, 32, 32, 15)
  reference = torch_reference.DVD(frames=5, width=WIDTH)
  reference.load_state_dict(dvd_ref.state_dict())  # A copy: train mode updates its statistics.
  with torch.no_grad():
    theirs = reference.train()(_nchw(stack))
  np.testing.assert_allclose(ours, _nhwc(theirs), atol=ATOL)


def test_dvd_one_frame_mode_converts():
  ref = torch_reference.DVD(frames=1, width=WIDTH).eval()
  variables = convert.dvd_variables(*_dvd_release(ref), width=WIDTH, frames=1)
  x = np.random.default_rng(5).random((1, 1, 16, 24, 3), np.float32)
  ours = models.create("dvd", frames=1, width=WIDTH).apply(variables, x)
  with torch.no_grad():
    theirs = ref(_nchw(x[:, 0]))
  np.testing.assert_allclose(ours, _nhwc(theirs), atol=ATOL)


def test_mismatches_are_all_listed(deblurgan_ref):
  state = _state_dict(deblurgan_ref)
  del state["model.4.bias"]
  state["model.26.weight"] = state["model.26.weight"][:, :4]
  state["model.99.weight"] = np.zeros(3, np.float32)
  with pytest.raises(convert.CheckpointMismatchError) as error:
    convert.deblurgan_variables(state, width=WIDTH)
  message = str(error.value)
  assert "missing (1): model.4.bias" in message
  assert "unexpected (1): model.99.weight" in message
  assert "mis-shaped (1): model.26.weight: got (3, 4, 7, 7), expected (3, 8, 7, 7)" in message


def test_wrong_width_is_reported(flownets_ref):
  with pytest.raises(convert.CheckpointMismatchError, match="mis-shaped"):
    convert.flownets_variables(_state_dict(flownets_ref), width=0.25)


def test_flownets_div_flow_must_agree(flownets_ref):
  with pytest.raises(ValueError, match="div_flow"):
    convert.flownets_variables({"state_dict": _state_dict(flownets_ref), "div_flow": 10.0},
                               width=WIDTH)


def test_dvd_flat_vector_of_wrong_length(dvd_ref):
  flat, means, variances = _dvd_release(dvd_ref)
  with pytest.raises(convert.CheckpointMismatchError, match="flat_params has"):
    convert.dvd_variables(flat[:-1], means, variances, width=WIDTH)
  with pytest.raises(convert.CheckpointMismatchError, match="running_var has"):
    convert.dvd_variables(flat, means, variances[:-1], width=WIDTH)


@pytest.mark.parametrize("name", ["deblurgan", "flownets", "dvd"])
def test_command_writes_an_init_checkpoint(name, tmp_path, deblurgan_ref, flownets_ref, dvd_ref):
  source = tmp_path / "weights"
  if name == "deblurgan":
    torch.save(deblurgan_ref.state_dict(), source)
    expected = convert.deblurgan_variables(_state_dict(deblurgan_ref), width=WIDTH)
  elif name == "flownets":
    torch.save({"arch": "flownets", "state_dict": flownets_ref.state_dict(), "div_flow": 20},
               source)
    expected = convert.flownets_variables(_state_dict(flownets_ref), width=WIDTH)
  else:
    source = tmp_path / "weights.npz"
    flat, means, variances = _dvd_release(dvd_ref)
    np.savez(source, params=flat, running_mean=np.concatenate(means),
             running_var=np.concatenate(variances))
    expected = convert.dvd_variables(flat, means, variances, width=WIDTH)
  convert.convert(name, str(source), str(tmp_path / "ckpt"), width=WIDTH)
  restored = checkpoint.load_variables(tmp_path / "ckpt")
  assert jax.tree.structure(restored) == jax.tree.structure(expected)
  jax.tree.map(np.testing.assert_array_equal, restored, expected)


def test_the_command_converts_and_says_where(tmp_path, dvd_ref):
  source = tmp_path / "weights.npz"
  flat, means, variances = _dvd_release(dvd_ref)
  np.savez(source, params=flat, running_mean=np.concatenate(means),
           running_var=np.concatenate(variances))
  command = [sys.executable, "-m", "reblur_jax.models.convert", "--model=dvd",
             f"--input={source}", f"--output={tmp_path / 'ckpt'}", f"--width={WIDTH}"]
  result = subprocess.run(command, env=subprocess_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == f"wrote dvd variables to {tmp_path / 'ckpt'}"
  again = subprocess.run(command, env=subprocess_env(), cwd=REPO, capture_output=True,
                         text=True, timeout=300)
  assert again.returncode != 0 and again.stderr.strip().splitlines()[-1].startswith(
      f"error: {tmp_path / 'ckpt'} already exists"), again.stderr[-3000:]
