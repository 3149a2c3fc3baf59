"""bfloat16 compute (`config.compute_dtype`): outputs near float32, float32 state and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import train
from reblur_jax.training import validation

from configs import smoke

WIDTH = 1 / 16
# Largest |bfloat16 - float32| of an output (deblur: values in [0, 1]; flow: pixels) of a thin,
# randomly initialised network, about twice what was measured (DVD 0.0023, DeblurGAN 0.040,
# FlowNetS 0.030 px): bfloat16 keeps 8 significant bits (relative step 2^-8 = 0.4%).
TOLERANCE = {"dvd": 0.005, "deblurgan": 0.08, "flownets": 0.06}


@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_bfloat16_outputs_are_near_float32(name):
  rng = np.random.default_rng(0)
  if name == "flownets":
    inputs = tuple(jnp.asarray(rng.random((1, 64, 64, 3), np.float32)) for _ in range(2))
  else:
    frames = models.create(name).num_input_frames
    inputs = (jnp.asarray(rng.random((1, frames, 32, 32, 3), np.float32)),)
  full = models.create(name, width=WIDTH)
  mixed = models.create(name, width=WIDTH, dtype=jnp.bfloat16)

  @jax.jit
  def both(key, *inputs):  # One compilation: init and both applies.
    variables = full.init(key, *inputs)
    return full.apply(variables, *inputs), mixed.apply(variables, *inputs)

  want, got = both(jax.random.key(0, impl="rbg"), *inputs)
  assert got.dtype == jnp.float32  # Outputs feed float32 losses.
  error = float(jnp.max(jnp.abs(got - want)))
  assert 0 < error < TOLERANCE[name], error  # 0 would mean bfloat16 was never used.


def test_bfloat16_train_step_is_finite_and_keeps_float32_state(tmp_path):
  config = smoke.get_config()
  config.compute_dtype = "bfloat16"
  config.unlabeled_fraction = 0  # Supervised: a smaller step to compile (FlowNetS in bfloat16
  # is covered above).
  validation.check_fields(config)
  mesh = sharding.create_mesh()
  run = train.create_run(config, state_lib.create_networks(config), mesh, steps_per_epoch=10)
  rng = np.random.default_rng(0)
  clip = lambda n: rng.uniform(size=(n, run.clip_length, 32, 32, 3)).astype(np.float32)
  batch = {"labeled": {"blurry": clip(8), "sharp": clip(8)}}
  state, metrics = run.train_step(run.state, sharding.global_batch(batch, mesh))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  floats = [x for x in jax.tree.leaves((state.params, state.opt_state)) if jnp.issubdtype(
      x.dtype, jnp.floating)]
  assert floats and {x.dtype for x in floats} == {jnp.dtype(jnp.float32)}
  path = checkpoint.save_variables(tmp_path / "variables", {"params": state.params["deblur"]})
  assert {x.dtype for x in jax.tree.leaves(checkpoint.load_variables(path))} == {
      np.dtype(np.float32)}


def test_unknown_compute_dtype_is_a_config_error():
  config = smoke.get_config()
  config.compute_dtype = "float16"
  with pytest.raises(validation.ConfigError, match="compute_dtype"):
    validation.check_fields(config)
