"""The three networks: sizes of the originals, shapes, purity, jit, gradients, input checks.

Everything but the parameter counts runs thin (width 0.125) on 32-64 px inputs; each jitted
function is compiled once per model (cached across tests).
"""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from reblur_jax import models
from reblur_jax.models import dvd
from reblur_jax.models import flownet
from reblur_jax.models import layers

WIDTH = 0.125


def _count(tree) -> int:
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _inputs(name, height, width, batch=2, frames=5, seed=0):
  """Positional inputs of model `name` at this size, random in [0, 1]."""
  rng = np.random.default_rng(seed)
  if name == "flownets":
    return tuple(jnp.asarray(rng.random((batch, height, width, 3), np.float32)) for _ in range(2))
  n = frames if name == "dvd" else 1
  return (jnp.asarray(rng.random((batch, n, height, width, 3), np.float32)),)


@pytest.mark.parametrize("name, params, batch_stats", [
    ("dvd", 15_305_291, 2 * 4_882),
    ("deblurgan", 11_378_179, 0),
    ("flownets", 38_675_536, 0),
])
def test_parameter_counts_equal_the_originals(name, params, batch_stats):
  shapes = jax.eval_shape(models.create(name).init, jax.random.key(0), *_inputs(name, 64, 64))
  assert _count(shapes["params"]) == params
  assert _count(shapes.get("batch_stats", {})) == batch_stats


def test_dvd_layer_list_names_every_layer():
  shapes = jax.eval_shape(models.create("dvd").init, jax.random.key(0), *_inputs("dvd", 32, 32))
  assert sorted(dvd.LAYERS) == sorted(shapes["params"]) == sorted(shapes["batch_stats"])


@pytest.mark.parametrize("name, kwargs, frames", [
    ("dvd", {}, 5), ("dvd", {"frames": 1}, 1), ("deblurgan", {}, 1), ("flownets", {}, None)])
def test_odd_sizes_come_back_whole(name, kwargs, frames):
  model = models.create(name, width=WIDTH, **kwargs)
  if frames is not None:
    assert model.num_input_frames == frames
  inputs = _inputs(name, 37, 29, frames=frames or 1)
  variables = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  out = jax.eval_shape(model.apply, variables, *inputs)
  assert out.shape == (2, 37, 29, 2 if name == "flownets" else 3)


def test_flownets_multiscale_shapes():
  model = models.create("flownets", width=WIDTH)
  inputs = _inputs("flownets", 37, 29)
  variables = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  flows = jax.eval_shape(lambda v: model.apply(v, *inputs, multiscale=True), variables)
  assert [f.shape for f in flows] == [
      (2, -(-37 // 2**k), -(-29 // 2**k), 2) for k in range(2, 7)]
  assert len(flownet.MULTISCALE_WEIGHTS) == len(flows)


@pytest.mark.parametrize("kernel, stride, padding, output_padding", [
    (4, 2, 1, 0), (3, 2, 1, 1), (3, 2, 0, 0), (3, 2, 2, 1), (5, 3, 2, 1), (2, 2, 0, 0)])
def test_conv_transpose_is_pytorchs(kernel, stride, padding, output_padding):
  """The phase-decomposed layer equals the input-dilated convolution PyTorch's defines."""
  x = jnp.asarray(np.random.default_rng(0).random((2, 5, 7, 3), np.float32))
  layer = layers.conv_transpose(4, kernel, stride, padding, output_padding=output_padding)
  variables = layer.init(jax.random.key(0), x)
  lo = kernel - 1 - padding
  expected = jax.lax.conv_transpose(
      x, variables["params"]["kernel"], (stride, stride), ((lo, lo + output_padding),) * 2,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True)
  size = lambda n: (n - 1) * stride - 2 * padding + kernel + output_padding
  assert expected.shape == (2, size(5), size(7), 4)
  np.testing.assert_allclose(layer.apply(variables, x), expected, atol=1e-5)


@pytest.mark.parametrize("kernel, stride, padding, features", [
    (7, 1, 0, 3), (3, 2, 1, 8), (5, 2, 2, 6), (3, 1, 1, 8)])
def test_conv2d_forms_equal_xlas_convolution(kernel, stride, padding, features):
  """Each form `conv2d` picks (few outputs, strided, plain) and its gradients equal lax's."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((2, 11, 10, 5), np.float32))
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 5, features)).astype(np.float32))
  reference = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((padding, padding),) * 2,
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda x, w: layers.conv2d(x, w, stride, padding)
  # A loss that reads the output, so the cotangent varies over positions and channels.
  value_and_grads = lambda conv: jax.jit(lambda x, w: (conv(x, w), jax.grad(
      lambda x, w: jnp.sum(jnp.sin(conv(x, w))), (0, 1))(x, w)))(x, w)
  got, want = value_and_grads(ours), value_and_grads(reference)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
  for got_grad, want_grad in zip(got[1], want[1]):
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-3)


SIZES = {"dvd": (32, 32), "deblurgan": (32, 32), "flownets": (64, 64)}


@functools.cache
def _compiled(name):
  """`(model, variables, inputs, jitted apply, its output)` of thin model `name`, built once."""
  model = models.create(name, width=WIDTH)
  inputs = _inputs(name, *SIZES[name])
  # The rbg generator compiles ~5x faster than threefry on CPU; initial values do not matter here.
  variables = jax.jit(model.init)(jax.random.key(1, impl="rbg"), *inputs)
  apply = jax.jit(model.apply)
  return model, variables, inputs, apply, apply(variables, *inputs)


@pytest.fixture(params=sorted(SIZES))
def compiled(request):
  return _compiled(request.param)


def test_jitted_apply_is_pure(compiled):
  model, variables, inputs, apply, out = compiled
  again = apply(variables, *inputs)
  np.testing.assert_array_equal(again, out)  # Same params, same input: the same bits.
  assert np.all(np.isfinite(out))
  if not isinstance(model, flownet.FlowNetS):  # Images in [0, 1] in, [0, 1] out.
    assert 0 <= out.min() and out.max() <= 1


def test_gradients_reach_every_parameter(compiled):
  """Except where the original's own design blocks them: DeblurGAN's convolutions before an
  affine-free instance norm have biases that the norm's mean subtraction cancels exactly."""
  model, variables, inputs, _, out = compiled
  weights = jax.random.normal(jax.random.key(2), out.shape)
  loss = lambda params: jnp.sum(weights * model.apply({**variables, "params": params}, *inputs))
  grads = jax.jit(jax.grad(loss))(variables["params"])
  for path, grad in flax.traverse_util.flatten_dict(grads, sep="/").items():
    norm = float(jnp.linalg.norm(grad))
    if isinstance(model, models.DeblurGAN) and path.endswith("bias") and path != "conv_out/bias":
      assert norm < 1e-4, path
    else:
      assert norm > 1e-6, path


def test_dvd_batch_stats_are_explicit_state():
  model, variables, (x,), _, _ = _compiled("dvd")
  with pytest.raises(flax.errors.ModifyScopeVariableError):
    jax.eval_shape(lambda v: model.apply(v, x, train=True), variables)  # Needs mutable=.
  train = jax.jit(lambda v: model.apply(v, x, train=True, mutable=["batch_stats"]))
  _, updates = train(variables)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), updates["batch_stats"],
                         variables["batch_stats"])
  assert all(jax.tree.leaves(changed))


def test_deblurgan_dropout_is_an_explicit_option():
  _, variables, (x,), _, base = _compiled("deblurgan")
  dropping = models.create("deblurgan", width=WIDTH, dropout_rate=0.5)
  # The same parameters serve both; dropout acts only when training, with the caller's key.
  train = jax.jit(lambda key: dropping.apply(variables, x, train=True, rngs={"dropout": key}))
  a, b = train(jax.random.key(1)), train(jax.random.key(2))
  assert not np.allclose(a, base) and not np.allclose(a, b)


@pytest.mark.parametrize("name, kwargs, match", [
    ("unet", {}, "unknown model"),
    ("dvd", {"frames": 3}, "frames must be 5"),
    ("deblurgan", {"width": 0.0}, "width must be a positive"),
])
def test_bad_construction(name, kwargs, match):
  with pytest.raises(ValueError, match=match):
    model = models.create(name, **kwargs)
    jax.eval_shape(model.init, jax.random.key(0), *_inputs(name, 16, 16))


@pytest.mark.parametrize("name, inputs", [
    ("dvd", (jnp.zeros((1, 3, 16, 16, 3)),)),
    ("deblurgan", (jnp.zeros((1, 16, 16, 3)),)),
    ("flownets", (jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 20, 3)))),
])
def test_bad_input_shapes(name, inputs):
  model = models.create(name, width=WIDTH)
  with pytest.raises(ValueError, match="shaped"):
    jax.eval_shape(model.init, jax.random.key(0), *inputs)


@pytest.mark.parametrize("train", [False, True])
def test_dvd_identity_head_starts_as_the_identity(train):
  # The head for training from scratch: the untrained network returns its centre frame, in
  # either batch-norm mode, while the original head does not.
  (clip,) = _inputs("dvd", 32, 32)
  centre = np.clip(np.asarray(clip[:, 2]), dvd.EPS, 1 - dvd.EPS)
  outputs = {}
  for head in dvd.HEADS:
    model = models.create("dvd", width=WIDTH, head=head)
    variables = model.init(jax.random.key(0), clip)
    outputs[head], _ = model.apply(variables, clip, train=train, mutable=["batch_stats"])
  np.testing.assert_allclose(outputs["identity"], centre, atol=1e-5)
  assert np.abs(np.asarray(outputs["original"]) - centre).mean() > 0.05


def test_dvd_rejects_an_unknown_head():
  with pytest.raises(ValueError, match="head must be one of"):
    models.create("dvd", head="tanh")
