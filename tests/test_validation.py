"""Every user error of docs/errors.md: caught before any work, as one line naming the fix.

The rows call the validation functions in-process (milliseconds each); two subprocess tests check
the commands' end-to-end form: `error: ...` as the last line, exit code 1, no traceback, and no
work done (no workdir, no output frames).
"""

import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from configs import smoke
from reblur_jax import checkpoint
from reblur_jax import deblur
from reblur_jax import models
from reblur_jax.data import prepare
from reblur_jax.evaluation import scoring
from reblur_jax.training import state
from reblur_jax.training import train
from reblur_jax.training import validation

from conftest import REPO, subprocess_env

TINY = "synthetic_blur/tiny_t7"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A data dir where the tiny synthetic set is prepared (its splits can be checked)."""
  directory = tmp_path_factory.mktemp("tfds")
  prepare.prepare("synthetic_blur", config="tiny_t7", data_dir=str(directory))
  return str(directory)


def _variables(tmp_path, name, **kwargs):
  """A variables directory of `models.create(name, **kwargs)` (zeros; only shapes matter)."""
  module = models.create(name, **kwargs)
  if name == "flownets":
    image = np.zeros((1, 32, 32, 3), np.float32)
    shapes = jax.eval_shape(module.init, jax.random.key(0), image, image)
  else:
    clip = np.zeros((1, module.num_input_frames, 32, 32, 3), np.float32)
    shapes = jax.eval_shape(lambda k: module.init(k, clip, train=False), jax.random.key(0))
  return checkpoint.save_variables(tmp_path / name,
                                   jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))


# (overrides of configs/smoke.py, expected message). "{tmp}" is the test's tmp_path.
CONFIG_ERRORS = [
    ({"task": "segment"}, r"config.task='segment': expected one of \('deblur', 'flow'\)"),
    ({"model": "unet"}, r"config.model='unet': expected one of \('dvd', 'deblurgan'\)"),
    ({"model_kwargs.width": 0.0}, r"config.model_kwargs.width=0.0: expected a channel multiplier"),
    ({"model_kwargs.frames": 3}, r"does not build dvd: DVD frames must be 5 .* or 1, got 3"),
    ({"flow_model_kwargs.width": -1.0}, r"config.flow_model_kwargs.width=-1.0: expected"),
    ({"alpha": -1.0}, r"config.alpha=-1.0: expected a weight >= 0 .*; e.g. --config.alpha=0.1\.$"),
    ({"blur_model": "gauss"}, r"config.blur_model='gauss': expected one of \('conv', 'warp'\)"),
    ({"flow_gradient": "half"}, r"config.flow_gradient='half': expected one of \('through', "
     r"'stop'\)"),
    ({"flow_source": "raft"}, r"config.flow_source='raft': expected one of \('flownets', "
     r"'tvl1'\)"),
    ({"flow_source": "tvl1", "finetune_flow": True},
     r"config.finetune_flow=True: expected False with flow_source='tvl1'"),
    ({"reblur_mask": "occluded"}, r"config.reblur_mask='occluded': expected one of \('none', "
     r"'inside', 'smooth_motion'\); e.g. --config.reblur_mask=smooth_motion\.$"),
    ({"model_kwargs.head": "tanh"}, r"does not build dvd: DVD head must be one of"),
    ({"frames": 4}, r"config.frames=4: expected 2 \(t, t\+1\) or 3"),
    ({"tau": 0.0}, r"config.tau=0.0: expected an exposure fraction > 0"),
    ({"tau": 1.5}, r"config.tau=1.5: expected at most 1 with blur_model='conv'.*blur_model=warp"),
    ({"max_disp": 0}, r"config.max_disp=0: expected a flow range >= 1 pixel"),
    ({"blur_samples": 0}, r"config.blur_samples=0: expected an integer >= 1"),
    ({"crop_size": 4}, r"config.crop_size=4: expected a crop side >= 8 pixels"),
    ({"batch_size": 0}, r"config.batch_size=0: expected an integer >= 1"),
    ({"unlabeled_fraction": 1.5}, r"config.unlabeled_fraction=1.5: expected a fraction in \[0, 1\]"),
    ({"eval_batch_size": 0}, r"config.eval_batch_size=0: expected an integer >= 1"),
    ({"num_eval_batches": 0}, r"config.num_eval_batches=0: expected an integer >= 1, or -1"),
    ({"learning_rate": 0.0}, r"config.learning_rate=0.0: expected a rate > 0"),
    ({"lr_decay_epochs": (30, -1)}, r"config.lr_decay_epochs=\(30, -1\): expected a tuple"),
    ({"lr_decay_factor": 2.0}, r"config.lr_decay_factor=2.0: expected a factor in \(0, 1\]"),
    ({"num_epochs": 0.0}, r"config.num_epochs=0.0: expected a number of epochs > 0"),
    ({"num_train_steps": 0}, r"config.num_train_steps=0: expected an integer >= 1, or -1"),
    ({"log_every_steps": 0}, r"config.log_every_steps=0: expected an integer >= 1"),
    ({"eval_every_steps": 0}, r"config.eval_every_steps=0: expected an integer >= 1"),
    ({"checkpoint_every_steps": 0}, r"config.checkpoint_every_steps=0: expected an integer >= 1"),
    ({"max_to_keep": 0}, r"config.max_to_keep=0: expected an integer >= 1"),
    ({"num_image_summaries": -1}, r"config.num_image_summaries=-1: expected an integer >= 0"),
    ({"task": "flow"}, r"config.unlabeled_fraction=0.5: expected 0 with task='flow'"),
    ({"batch_size": 6, "unlabeled_fraction": 1 / 3},
     r"unlabeled batch \(batch_size 6 x unlabeled_fraction 0.33+\d*\) = 2 not divisible by the "
     r"4 devices"),
    ({"labeled_dataset": "nosuch/set"},
     r"config.labeled_dataset='nosuch/set' is not a data set of this project: expected"),
    ({"unlabeled_dataset": "synthetic_blur/nosuch"},
     r"config.unlabeled_dataset='synthetic_blur/nosuch': synthetic_blur has no config 'nosuch'"),
    ({"eval_dataset": "gopro/blur_t7"},
     r"config.eval_dataset='gopro/blur_t7' is not prepared in .*python -m "
     r"reblur_jax.data.prepare gopro --config=blur_t7"),
    ({"labeled_dataset": "blurry_video/default"},
     r"config.labeled_dataset='blurry_video/default': expected a labeled set .* has no sharp "
     r"frames; use it as unlabeled_dataset"),
    ({"eval_split": "valid"}, r"config.eval_dataset='synthetic_blur/tiny_t7' has no split 'valid'"),
    ({"init_checkpoint": "{tmp}/nope"},
     r"config.init_checkpoint='.*/nope': expected an existing variables directory"),
    ({"init_checkpoint": "{tmp}/run"},
     r"expected a variables directory, not a training run; pass --config.init_checkpoint="
     r".*/run/variables/deblur"),
    ({"init_checkpoint": "{tmp}/dvd"},
     r"config.init_checkpoint: .*/dvd does not hold a dvd\(frames=5, width=0.0625\) network"),
    ({"flow_init_checkpoint": "{tmp}/flownets"},
     r"config.flow_init_checkpoint: .*/flownets does not hold a flownets\(width=0.03125\)"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  """Init checkpoints of twice the smoke config's widths, and a training run's workdir."""
  root = tmp_path_factory.mktemp("checkpoints")
  (root / "run" / "checkpoints").mkdir(parents=True)
  _variables(root, "dvd", width=1 / 8)
  _variables(root, "flownets", width=1 / 16)
  return root


@pytest.mark.parametrize("overrides, message", CONFIG_ERRORS,
                         ids=[",".join(o) for o, _ in CONFIG_ERRORS])
def test_config_errors(overrides, message, data_dir, files):
  config = smoke.get_config()
  config.data_dir = data_dir
  for field, value in overrides.items():
    value = value.replace("{tmp}", str(files)) if isinstance(value, str) else value
    parent, _, leaf = field.rpartition(".")
    (config[parent] if parent else config)[leaf] = value
  with pytest.raises(validation.ConfigError, match=message) as error:
    validation.validate_config(config, 4)
  assert "\n" not in str(error.value)


def test_the_smoke_config_and_matching_init_checkpoints_pass(data_dir, tmp_path):
  config = smoke.get_config()
  config.data_dir = data_dir
  config.init_checkpoint = _variables(tmp_path, "dvd", width=1 / 16)
  config.flow_init_checkpoint = _variables(tmp_path, "flownets", width=1 / 32)
  validation.validate_config(config, 4)


def test_tvl1_flows_build_no_flownets_and_ignore_its_checkpoint(data_dir, files):
  config = smoke.get_config()
  config.data_dir, config.flow_source = data_dir, "tvl1"
  config.flow_init_checkpoint = str(files / "flownets")  # Of another width: not looked at.
  validation.validate_config(config, 4)
  networks = state.create_networks(config)
  assert sorted(networks) == ["deblur"]
  assert train.clip_length(config, networks) == networks["deblur"].num_input_frames == 5
  # A one-frame network still reads t-1, t, t+1 of unlabeled clips: the flows come from them.
  config.model, config.model_kwargs = "deblurgan", {"width": 0.0625}
  assert train.clip_length(config, state.create_networks(config)) == 3


@pytest.mark.parametrize("arguments, message", [
    ({"adapt_flows": "raft"}, r"--adapt_flows=raft: expected one of \('flownets', 'tvl1'\)"),
    ({"adapt_steps": -1}, r"--adapt_steps=-1: expected a step count >= 0"),
    ({"adapt_learning_rate": 0.0}, r"--adapt_learning_rate=0.0: expected a rate > 0"),
    ({"adapt_batch_size": 0}, r"--adapt_batch_size=0: expected a clip count >= 1"),
    ({"tile": -8}, r"--tile=-8: expected a tile side >= 0"),
    ({"output": "{file}"}, r"--output=.*/file is a file: expected a folder"),
    ({"adapt_flow_gradient": "half"},
     r"--adapt_flow_gradient=half: expected one of \('through', 'stop'\)"),
    ({"adapt_alpha": -0.3}, r"--adapt_alpha=-0.3: expected a weight >= 0"),
])
def test_deblur_flag_errors(arguments, message, tmp_path):
  (tmp_path / "file").write_text("")
  flags = {"output": str(tmp_path / "out"), "adapt_steps": 0, "adapt_learning_rate": 1e-5,
           "adapt_batch_size": None, "tile": None}
  flags.update({k: v.format(file=tmp_path / "file") if isinstance(v, str) else v
                for k, v in arguments.items()})
  with pytest.raises(validation.ConfigError, match=message):
    deblur.check_arguments(**flags)


@pytest.mark.parametrize("arguments, message", [
    ({"max_clips": 0}, r"--max_clips=0: expected a clip count >= 1, or -1 for all"),
    ({"tile": -1}, r"--tile=-1: expected a tile side >= 0"),
    ({"num_grids": -2}, r"--num_grids=-2: expected a count >= 0"),
])
def test_evaluate_flag_errors(arguments, message):
  with pytest.raises(validation.ConfigError, match=message):
    scoring.check_arguments(**{"max_clips": -1, "tile": None, "num_grids": 2, **arguments})


def _run(*command):
  return subprocess.run([sys.executable, *command], env=subprocess_env(), cwd=REPO,
                        capture_output=True, text=True, timeout=300)


def test_train_reports_a_config_error_as_one_line_before_any_work(tmp_path):
  result = _run("train.py", "--config=configs/smoke.py", f"--workdir={tmp_path / 'run'}",
                f"--config.data_dir={tmp_path / 'tfds'}", "--config.blur_model=gauss")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.blur_model='gauss': expected one of ('conv', 'warp'); "
      "e.g. --config.blur_model=conv.")
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists() and not (tmp_path / "tfds").exists()


def test_deblur_reports_an_output_file_before_reading_anything(tmp_path):
  (tmp_path / "out.png").write_bytes(b"mine")
  result = _run("-m", "reblur_jax.deblur", f"--checkpoint={tmp_path / 'none'}",
                f"--input={tmp_path / 'none.mp4'}", f"--output={tmp_path / 'out.png'}")
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      f"error: --output={tmp_path / 'out.png'} is a file: expected a folder")
  assert "Traceback" not in result.stderr
  assert (tmp_path / "out.png").read_bytes() == b"mine"


def test_resuming_a_run_with_other_settings_is_an_error_before_any_work(tiny_run, tmp_path):
  saved = checkpoint.saved_config(tiny_run.workdir)
  assert checkpoint.saved_config(tmp_path) is None
  steps = sorted(os.listdir(os.path.join(tiny_run.workdir, checkpoint.CHECKPOINT_DIR)))
  longer = ml_collections.ConfigDict(saved)
  longer.num_train_steps += 2
  longer.eval_every_steps = 1
  validation.check_resume(longer, saved, tiny_run.workdir)  # Length and cadence may change.
  other = ml_collections.ConfigDict(saved)
  other.alpha += 1.0
  other.model_kwargs.width *= 2
  with pytest.raises(validation.ConfigError,
                     match=rf"^{tiny_run.workdir} holds a run started with other settings "
                           rf"\(alpha={saved['alpha']!r} \(now {saved['alpha'] + 1.0!r}\), "
                           r"model_kwargs=.*\): expected its settings to resume it"):
    train.train_and_evaluate(other, tiny_run.workdir)
  assert sorted(os.listdir(os.path.join(tiny_run.workdir, checkpoint.CHECKPOINT_DIR))) == steps
