"""Training pieces in-process: schedule, config checks, losses, metric buffering, one real step."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from reblur_jax import blur
from reblur_jax.training import losses
from reblur_jax.training import optim
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import summaries
from reblur_jax.training import train
from reblur_jax.training import validation

from configs import default  # The repository root is on pytest's path (pyproject.toml).
from configs import smoke

PAPER_CONFIGS = ("dvd_supervised", "deblurgan_supervised", "flownets_pretrain", "dvd_reblur",
                 "deblurgan_reblur")


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name, variant", [(name, variant) for name in PAPER_CONFIGS
                                           for variant in ("", "cpu")] + [("smoke", "")])
def test_every_config_is_valid_and_documents_its_command(name, variant):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config(variant) if variant else module.get_config()
  validation.validate_config(config, 1)
  assert f"python train.py --config=configs/{name}.py" in module.__doc__
  networks = state_lib.create_networks(config)
  # FlowNetS serves flow training and the reblur loss's "flownets" flows; TV-L1 needs none.
  with_flownets = config.unlabeled_fraction and config.flow_source == "flownets"
  assert set(networks) == ({"flow"} if config.task == "flow" else
                           {"deblur", "flow"} if with_flownets else {"deblur"})


def test_real_data_variants_use_the_paper_sets_and_exposure():
  gopro = importlib.import_module("configs.dvd_reblur").get_config("gopro")
  assert (gopro.labeled_dataset, gopro.unlabeled_dataset, gopro.eval_dataset) == (
      "gopro/blur_t7",) * 3  # DVD reads 7-frame clips.
  assert (gopro.labeled_split, gopro.unlabeled_split) == ("train", "test")
  dvd = importlib.import_module("configs.deblurgan_reblur").get_config("dvd")
  assert dvd.unlabeled_dataset == "dvd/default"  # DeblurGAN reads 3-frame clips.
  # tau from how each set was made (docs/data.md): GoPro's adjacent windows of E = 7..13 frames,
  # DVD's E = 7 of every D = 8 frames; the paper's tau = 1 stays an explicit override.
  assert gopro.tau == blur.exposure_tau(7, 7) == blur.exposure_tau(13, 13)
  assert dvd.tau == blur.exposure_tau(7, 8)
  assert gopro.model_kwargs.head == "original"  # They start from the released DVD weights.
  gopro.tau = 1.0  # The paper's text, as `--config.tau=1` sets it.
  validation.validate_config(gopro, 1, check_files=False)
  with pytest.raises(ValueError, match="needs ground-truth flow"):
    importlib.import_module("configs.flownets_pretrain").get_config("dvd")


def test_unknown_config_variant_is_rejected():
  with pytest.raises(ValueError, match="unknown config variant 'gpu'"):
    importlib.import_module("configs.dvd_reblur").get_config("gpu")


# ----------------------------------------------------------------------------- optimiser


def test_schedule_halves_at_epochs_30_50_100():
  schedule = optim.learning_rate_schedule(1e-4, decay_epochs=(30, 50, 100), decay_factor=0.5,
                                          steps_per_epoch=10)
  steps = [0, 299, 300, 499, 500, 999, 1000, 5000]
  expected = [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5, 1.25e-5]
  np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, rtol=1e-6)


def test_schedule_rejects_empty_epochs():
  with pytest.raises(ValueError, match="steps_per_epoch"):
    optim.learning_rate_schedule(1e-4, decay_epochs=(30,), decay_factor=0.5, steps_per_epoch=0)


# ----------------------------------------------------------------------------- config checks


@pytest.mark.parametrize("fraction, labeled_ok, unlabeled_ok", [
    (0.5, False, False),   # 6 + 6 clips on 8 devices.
    (2 / 3, False, True),  # 4 + 8.
    (1 / 3, True, False),  # 8 + 4.
])
def test_batch_parts_not_divisible_by_devices_are_config_errors(fraction, labeled_ok,
                                                                unlabeled_ok):
  config = default.get_config()
  config.batch_size, config.unlabeled_fraction, config.eval_batch_size = 12, fraction, 8
  with pytest.raises(ValueError, match="not divisible by the 8 devices") as error:
    validation.validate_config(config, 8)
  message = str(error.value)
  # Each part is named with the fields that set it and its size.
  assert ("x (1 - unlabeled_fraction" in message) != labeled_ok
  assert ("x unlabeled_fraction" in message) != unlabeled_ok


def test_divisible_batches_pass_and_split_as_configured():
  config = default.get_config()
  config.batch_size, config.unlabeled_fraction, config.eval_batch_size = 16, 0.25, 8
  validation.validate_config(config, 4)
  assert validation.batch_sizes(config) == {"labeled": 12, "unlabeled": 4}


def test_flow_task_rejects_unlabeled_clips():
  config = default.get_config()
  config.task = "flow"
  with pytest.raises(ValueError, match="unlabeled_fraction=0"):
    validation.validate_config(config, 1)


@pytest.mark.parametrize("task, fraction, finetune, expected", [
    ("deblur", 0.0, False, ("deblur",)),
    ("deblur", 0.5, False, ("deblur",)),
    ("deblur", 0.5, True, ("deblur", "flow")),
    ("flow", 0.0, False, ("flow",)),
])
def test_which_networks_are_built_and_trained(task, fraction, finetune, expected):
  config = default.get_config()
  config.task, config.unlabeled_fraction, config.finetune_flow = task, fraction, finetune
  networks = state_lib.create_networks(config)
  assert state_lib.trainable_networks(config, networks) == expected
  assert ("flow" in networks) == (task == "flow" or fraction > 0)


# ----------------------------------------------------------------------------- losses


def test_windows_are_centred_on_each_offset():
  clips = jnp.arange(2 * 7).reshape(2, 7, 1, 1, 1).astype(jnp.float32)  # Frame index as value.
  out = losses.windows(clips, 5, (-1, 0, 1))
  assert out.shape == (6, 5, 1, 1, 1)
  np.testing.assert_array_equal(out[:, :, 0, 0, 0] % 7, [[0, 1, 2, 3, 4]] * 2 +
                                [[1, 2, 3, 4, 5]] * 2 + [[2, 3, 4, 5, 6]] * 2)
  with pytest.raises(ValueError, match="7 frames"):
    losses.windows(clips[:, 1:6], 5, (-1, 0, 1))


@pytest.mark.parametrize("frames", [3, 2])
def test_reblur_loss_pairs_frames_as_the_conventions_say(frames):
  """flow_next = f(I[t+1], I[t]), flow_prev = f(I[t-1], I[t]); zero flow reblurs to I[t]."""
  rng = np.random.default_rng(0)
  restored = jnp.asarray(rng.uniform(size=(frames, 2, 8, 8, 3)), jnp.float32)
  blurry = jnp.asarray(rng.uniform(size=(2, 8, 8, 3)), jnp.float32)
  calls = []

  def flow_fn(first, second):
    calls.append((first, second))
    return jnp.zeros(first.shape[:-1] + (2,))

  loss, reblurred = losses.reblur_loss(restored, blurry, flow_fn, frames=frames, tau=1.0,
                                       method="conv", max_disp=4, samples=4)
  middle, following = restored[frames - 2], restored[frames - 1]
  (first, second), = calls
  expected_first = [following, restored[0]] if frames == 3 else [following]
  np.testing.assert_array_equal(first, jnp.concatenate(expected_first))
  np.testing.assert_array_equal(second, jnp.concatenate([middle] * (frames - 1)))
  np.testing.assert_allclose(reblurred, middle, atol=1e-6)
  np.testing.assert_allclose(loss, np.mean((np.asarray(middle) - np.asarray(blurry)) ** 2),
                             rtol=1e-5)


def test_reblur_loss_rejects_other_frame_counts():
  with pytest.raises(ValueError, match="config.frames"):
    losses.reblur_offsets(4)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 7), (8, 8)])
def test_adaptive_average_matches_torch(size):
  x = np.random.default_rng(1).normal(size=(2, 32, 24, 2)).astype(np.float32)
  expected = torch.nn.functional.adaptive_avg_pool2d(
      torch.from_numpy(x).permute(0, 3, 1, 2), size).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(losses.adaptive_average(jnp.asarray(x), size), expected, atol=1e-6)


def test_multiscale_epe_weights_each_scale_by_its_summed_error():
  target = jnp.asarray(np.random.default_rng(2).normal(size=(2, 64, 64, 2)) * 5, jnp.float32)
  sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
  weights = (0.005, 0.01, 0.02, 0.08, 0.32)
  exact = [losses.adaptive_average(target / 20.0, s) for s in sizes]
  assert float(losses.multiscale_epe(exact, target, weights=weights, div_flow=20.0)) < 1e-5
  # Off by 0.5 (in flow / 20 units) along x at the coarsest scale only: its EPE sum is 0.5 * 1.
  shifted = exact[:4] + [exact[4] + jnp.asarray([0.5, 0.0])]
  np.testing.assert_allclose(
      losses.multiscale_epe(shifted, target, weights=weights, div_flow=20.0), 0.32 * 0.5,
      rtol=1e-4)


# ----------------------------------------------------------------------------- reporting


def test_step_metrics_report_the_first_non_finite_step():
  buffer = summaries.StepMetrics()
  for step, loss in [(1, 1.0), (2, 3.0)]:
    buffer.add(step, {"loss": jnp.float32(loss)})
  assert buffer.fetch() is None
  assert buffer.mean() == {"loss": 2.0}
  for step, loss in [(3, 1.0), (4, np.inf), (5, np.nan)]:
    buffer.add(step, {"loss": jnp.float32(loss)})
  assert buffer.fetch() == (4, np.inf)


def test_image_grid_puts_panels_in_order():
  images = {name: np.full((2, 4, 5, 3), value, np.float32)
            for value, name in enumerate(["sharp", "blurry", "deblurred"])}
  name, grid = summaries.image_grid(images)
  assert name == "blurry|deblurred|sharp"
  assert grid.shape == (2, 4, 15, 3)
  np.testing.assert_array_equal(grid[0, 0, ::5, 0], [1, 1, 0])  # Values clipped to [0, 1].


# ----------------------------------------------------------------------------- one real step


def test_train_step_moves_deblur_params_and_leaves_frozen_flow():
  """A real DVD-Reblur step: d learns, FlowNetS (finetune_flow=False) keeps its parameters."""
  config = smoke.get_config()
  mesh = sharding.create_mesh()
  run = train.create_run(config, state_lib.create_networks(config), mesh, steps_per_epoch=10)
  before = jax.device_get(run.state)  # The step donates (deletes) its input state.
  rng = np.random.default_rng(0)
  clip = lambda n: rng.uniform(size=(n, run.clip_length, 32, 32, 3)).astype(np.float32)
  batch = {"labeled": {"blurry": clip(4), "sharp": clip(4)}, "unlabeled": {"blurry": clip(4)}}
  state, metrics = run.train_step(run.state, sharding.global_batch(batch, mesh))
  after = jax.device_get(state.params)

  assert int(state.step) == 1
  assert set(metrics) == {"loss", "loss_supervised", "loss_reblur", "psnr", "psnr_reblur",
                          "learning_rate"}
  np.testing.assert_allclose(
      metrics["loss"], metrics["loss_supervised"] + config.alpha * metrics["loss_reblur"],
      rtol=1e-6)
  changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                         before.params["deblur"], after["deblur"]))
  assert all(changed)
  jax.tree.map(np.testing.assert_array_equal, before.params["flow"], after["flow"])
  assert not np.array_equal(jax.device_get(state.rng), before.rng)


@pytest.mark.parametrize("stop", [False, True])
def test_stopped_flow_gradient_pulls_only_the_blurred_frame(stop):
  # The neighbours reach L_U only through the flows: with the gradient stopped there, d is
  # trained by the middle frame alone.
  rng = np.random.default_rng(0)
  restored = jnp.asarray(rng.random((3, 1, 16, 16, 3), np.float32))
  blurry = jnp.asarray(rng.random((1, 16, 16, 3), np.float32))
  flow_fn = lambda first, second: 4.0 * (first - second)[..., :2]
  def loss(frames):
    value, _ = losses.reblur_loss(frames, blurry, flow_fn, frames=3, tau=0.5, method="conv",
                                  max_disp=4, samples=4, stop_flow_gradient=stop)
    return value
  grads = jax.grad(loss)(restored)
  neighbours = float(jnp.abs(grads[0]).sum() + jnp.abs(grads[2]).sum())
  assert float(jnp.abs(grads[1]).sum()) > 0
  assert (neighbours == 0.0) == stop


def _counting_step(step_losses, calls):
  """A train step whose state is the step count and whose loss is `step_losses[state]`."""
  def step(state, batch):
    del batch
    calls.append(state)
    return state + 1, {"loss": jnp.asarray(step_losses[state])}
  return step


def test_the_loop_pauses_on_schedule_and_stops_when_its_caller_leaves():
  mesh = sharding.create_mesh()
  batches = iter(lambda: {"x": np.zeros((jax.device_count(), 1), np.float32)}, None)
  calls, seen = [], []
  step = _counting_step([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], calls)
  for point in train.loop(step, 0, batches, mesh, start=0, total=6, pause=lambda s: s % 2 == 0):
    seen.append((point.step, point.state, point.last, point.metrics.mean()))
    if point.step == 4:
      break  # Early stopping: no step runs after the caller leaves.
  assert seen == [(2, 2, False, {"loss": 1.5}), (4, 4, False, {"loss": 3.5})]
  assert calls == [0, 1, 2, 3]


def test_the_loop_names_the_first_non_finite_step():
  mesh = sharding.create_mesh()
  batches = iter(lambda: {"x": np.zeros((jax.device_count(), 1), np.float32)}, None)
  step = _counting_step([1.0, float("nan"), 3.0, np.inf], [])
  points = []
  with pytest.raises(train.NonFiniteLossError) as error:
    for point in train.loop(step, 0, batches, mesh, start=0, total=4, pause=lambda s: False):
      points.append(point)
  assert not points and error.value.step == 2 and np.isnan(error.value.loss)
