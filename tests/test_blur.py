"""The blur formation model against an independent line integral, the dense table and physics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.data

from reblur_jax import blur
from reblur_jax.data import synthetic

H, W = 40, 48
METHOD_KW = {"conv": dict(method="conv"), "warp": dict(method="warp", samples=32)}


@functools.partial(jax.jit, static_argnames=("tau", "method", "max_disp", "samples",
                                             "linear_light"))
def reblur(sharp, flow_prev, flow_next, **kwargs):
  return blur.reblur(sharp, flow_prev, flow_next, **kwargs)


def psnr(a, b, margin=0):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if margin:
    a, b = a[margin:-margin, margin:-margin], b[margin:-margin, margin:-margin]
  return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def line_integral(sharp, flow_prev, flow_next, tau, points=512):
  """The model's definition, sampled densely along each segment with scipy (edge-extended)."""
  rows, cols = np.mgrid[:sharp.shape[0], :sharp.shape[1]].astype(np.float64)
  s = (np.arange(points) + 0.5) / points
  segments = [f for f in (flow_next, flow_prev) if f is not None]
  total = 0.0
  for flow in segments:
    y = rows + s[:, None, None] * tau * flow[..., 1]
    x = cols + s[:, None, None] * tau * flow[..., 0]
    total += np.stack([scipy.ndimage.map_coordinates(sharp[..., c].astype(np.float64), [y, x],
                                                     order=1, mode="nearest").mean(axis=0)
                       for c in range(sharp.shape[-1])], axis=-1)
  return total / len(segments)


def smooth_image(h=H, w=W):
  """Smooth RGB in [0, 1]: a few low-frequency waves with periods of 14 px and more."""
  y, x = np.mgrid[:h, :w].astype(np.float32)
  channels = [0.5 + 0.25 * np.sin(2 * np.pi * (x / 19 + y / 23) + c)
              + 0.2 * np.cos(2 * np.pi * (x / 29 - y / 14) + 2 * c) for c in range(3)]
  return np.stack(channels, axis=-1).astype(np.float32)


def uniform(u, v, h=H, w=W):
  return np.broadcast_to(np.array([u, v], np.float32), (h, w, 2)).copy()


def varying(seed, scale=6.0, h=H, w=W):
  """A smooth, spatially varying flow field of magnitude ~scale pixels."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[:h, :w].astype(np.float32)
  u = scale * np.sin(2 * np.pi * (y / 37 + rng.random())) + rng.uniform(-2, 2)
  v = scale * np.cos(2 * np.pi * (x / 31 + rng.random())) + rng.uniform(-2, 2)
  return np.stack([u, v], axis=-1).astype(np.float32)


# ------------------------------------------------------------------------------ exposure and table


def test_exposure_tau():
  assert blur.exposure_tau(9, 9) == 0.5      # exposure fills the frame interval
  assert blur.exposure_tau(9, 18) == 0.25    # half the interval is dead time
  assert blur.exposure_tau(1, 4) == 0.125
  for bad in [(8, 9), (0, 9), (9, 0), (9.5, 9)]:
    with pytest.raises(ValueError, match="exposure|spacing"):
      blur.exposure_tau(*bad)


@pytest.mark.parametrize("max_disp,tau", [(16, 1.0), (5, 0.5)])
def test_table_kernels_are_normalised_segments(max_disp, tau):
  table = blur.kernel_table(max_disp, tau)
  size = 2 * max_disp + 1
  assert table.shape == (size,) * 4
  np.testing.assert_allclose(table.sum(axis=(2, 3)), 1.0, atol=1e-12)
  assert table.min() >= 0
  # Zero flow is a delta; every kernel's centre of mass is the segment's midpoint tau * (u, v) / 2.
  assert table[max_disp, max_disp, max_disp, max_disp] == pytest.approx(1.0)
  offsets = np.arange(size) - max_disp
  flows = np.arange(size) - max_disp
  mean_dy = np.einsum("vuyx,y->vu", table, offsets)
  mean_dx = np.einsum("vuyx,x->vu", table, offsets)
  np.testing.assert_allclose(mean_dy, np.broadcast_to(tau * flows[:, None] / 2, mean_dy.shape),
                             atol=1e-9)
  np.testing.assert_allclose(mean_dx, np.broadcast_to(tau * flows[None, :] / 2, mean_dx.shape),
                             atol=1e-9)
  # A horizontal flow puts all its mass on the centre row, from dx = 0 to dx = tau * u.
  u = max_disp
  kernel = table[max_disp, max_disp + u]
  assert kernel[max_disp].sum() == pytest.approx(1.0)
  assert np.flatnonzero(kernel[max_disp]).max() - max_disp == int(np.ceil(tau * u))


def test_flow_to_kernel_interpolates_the_table():
  table = blur.kernel_table(16, 1.0)
  flow = np.array([[2.25, -3.5]], np.float32)               # u = 2.25, v = -3.5
  kernel = np.asarray(blur.flow_to_kernel(None, flow))[0]
  corners = [(0.75 * 0.5, 2, -4), (0.25 * 0.5, 3, -4), (0.75 * 0.5, 2, -3), (0.25 * 0.5, 3, -3)]
  expected = sum(w * table[16 + v, 16 + u] for w, u, v in corners)
  np.testing.assert_allclose(kernel, expected, atol=1e-6)
  both = np.asarray(blur.flow_to_kernel(-flow, flow))[0]
  np.testing.assert_allclose(both.sum(), 1.0, atol=1e-5)
  np.testing.assert_allclose(both, 0.5 * (kernel + kernel[::-1, ::-1]), atol=1e-6)


# -------------------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("method", ["conv", "warp"])
def test_zero_flow_is_identity(method):
  image = np.random.default_rng(0).random((H, W, 3), np.float32)
  zero = np.zeros((H, W, 2), np.float32)
  np.testing.assert_allclose(reblur(image, zero, zero, **METHOD_KW[method]), image, atol=1e-6)
  np.testing.assert_allclose(reblur(image, None, zero, **METHOD_KW[method]), image, atol=1e-6)


@pytest.mark.parametrize("method", ["conv", "warp"])
def test_constant_image_stays_constant(method):
  image = np.full((H, W, 3), 0.37, np.float32)
  # Flows reaching far out of the image and past max_disp: borders clamp, kernels sum to 1.
  out = reblur(image, 3 * varying(1, scale=9), 3 * varying(2, scale=9), **METHOD_KW[method])
  np.testing.assert_allclose(out, image, atol=1e-6)


# -------------------------------------------------------------------------- against the definition


LINE_CASES = {
    "uniform_asymmetric": (uniform(-2.3, 4.6), uniform(5.7, 1.8), 1.0),
    "uniform_asymmetric_tau_half": (uniform(-2.3, 4.6), uniform(5.7, 1.8), 0.5),
    "varying": (varying(3), varying(4), 1.0),
    "varying_tau_half": (varying(3), varying(4), 0.5),
    "two_frame": (None, uniform(-6.4, -3.1), 1.0),
    "two_frame_varying": (None, varying(5), 0.5),
}


@pytest.mark.parametrize("method", ["conv", "warp"])
@pytest.mark.parametrize("case", sorted(LINE_CASES))
def test_matches_line_integral(case, method):
  flow_prev, flow_next, tau = LINE_CASES[case]
  image = smooth_image()
  expected = line_integral(image, flow_prev, flow_next, tau)
  out = reblur(image, flow_prev, flow_next, tau=tau, **METHOD_KW[method])
  assert psnr(out, expected) >= 40
  # The check has teeth: the blur is visible, and flipping a flow's sign breaks the match.
  assert psnr(image, expected) < 33
  flipped = reblur(image, flow_prev, -flow_next, tau=tau, **METHOD_KW[method])
  assert psnr(flipped, expected) < 35


@pytest.mark.parametrize("max_disp,tau,two_frame", [(16, 1.0, False), (16, 0.5, True),
                                                     (4, 0.75, False)])
def test_conv_equals_dense_table_formulation(max_disp, tau, two_frame):
  rng = np.random.default_rng(6)
  image = rng.random((24, 32, 3), np.float32)
  # Some flows beyond max_disp, some exactly on table entries.
  flow_next = rng.uniform(-1.3, 1.3, (24, 32, 2)).astype(np.float32) * max_disp
  flow_next[::5] = np.round(flow_next[::5])
  flow_prev = rng.uniform(-1.3, 1.3, (24, 32, 2)).astype(np.float32) * max_disp
  flow_prev = None if two_frame else flow_prev
  kernel = blur.flow_to_kernel(flow_prev, flow_next, max_disp=max_disp, tau=tau)
  dense = blur.apply_kernel(image, kernel)
  out = reblur(image, flow_prev, flow_next, tau=tau, max_disp=max_disp)
  np.testing.assert_allclose(out, dense, atol=1e-5)


# --------------------------------------------------------------------------------------- gradients


def _directional_check(method, eps, rtol):
  rng = np.random.default_rng(7)
  image = smooth_image() + 0.1 * rng.random((H, W, 3), np.float32)
  # Fractional parts in [0.2, 0.8]: the conv model is bilinear in the flow inside a table cell.
  frac = lambda: rng.integers(-8, 8, (H, W, 2)) + rng.uniform(0.2, 0.8, (H, W, 2))
  args = [image, frac().astype(np.float32), frac().astype(np.float32)]
  weights = rng.normal(size=(H, W, 3)).astype(np.float32)
  loss = jax.jit(lambda *a: jnp.sum(weights * blur.reblur(*a, **METHOD_KW[method])))
  grads = jax.jit(jax.grad(lambda *a: jnp.sum(weights * blur.reblur(*a, **METHOD_KW[method])),
                           argnums=(0, 1, 2)))(*args)
  for argnum, name in enumerate(["sharp", "flow_prev", "flow_next"]):
    direction = rng.normal(size=args[argnum].shape).astype(np.float32)
    shifted = lambda step: [a + step * direction if i == argnum else a for i, a in enumerate(args)]
    numeric = (float(loss(*shifted(eps))) - float(loss(*shifted(-eps)))) / (2 * eps)
    analytic = float(jnp.vdot(grads[argnum], direction))
    assert abs(analytic) > 1.0, name
    assert analytic == pytest.approx(numeric, rel=rtol), name


def test_conv_gradients_match_finite_differences():
  _directional_check("conv", eps=1e-2, rtol=2e-3)


def test_warp_gradients_match_finite_differences():
  # Warp is piecewise smooth in the flow (kinks where samples cross pixel rows): small steps.
  _directional_check("warp", eps=1e-3, rtol=1e-2)


def test_flows_beyond_max_disp_saturate():
  image = smooth_image()
  far, edge = uniform(25.0, -40.0), uniform(8.0, -8.0)
  out = reblur(image, None, far, max_disp=8)
  np.testing.assert_allclose(out, reblur(image, None, edge, max_disp=8), atol=1e-6)
  grad = jax.jit(jax.grad(lambda f: jnp.sum(blur.reblur(image, None, f, max_disp=8))))(far)
  np.testing.assert_array_equal(grad, 0.0)


def test_nan_flow_spoils_only_its_pixel():
  image = smooth_image()
  flow = uniform(3.5, -1.5)
  flow[10, 20] = np.nan
  for method in ["conv", "warp"]:
    out = np.asarray(reblur(image, None, flow, **METHOD_KW[method]))
    assert np.isnan(out[10, 20]).all()
    assert np.isnan(out).any(axis=-1).sum() == 1


# ---------------------------------------------------------------------------------------- batching


@pytest.mark.parametrize("method", ["conv", "warp"])
def test_jit_vmap_equals_frame_by_frame(method):
  rng = np.random.default_rng(8)
  images = rng.random((3, H, W, 3), np.float32)
  flow_prev = np.stack([varying(10 + i) for i in range(3)])
  flow_next = np.stack([varying(20 + i) for i in range(3)])
  for prev in (flow_prev, None):
    batched = blur.reblur_batch(images, prev, flow_next, tau=0.5, **METHOD_KW[method])
    for i in range(3):
      one = reblur(images[i], None if prev is None else prev[i], flow_next[i], tau=0.5,
                   **METHOD_KW[method])
      np.testing.assert_allclose(batched[i], one, atol=1e-6)


def test_reblur_batch_inside_jit_and_grad():
  images = np.random.default_rng(9).random((2, H, W, 3), np.float32)
  flows = np.stack([varying(30), varying(31)])
  step = jax.jit(jax.grad(lambda f: jnp.mean((blur.reblur_batch(images, -f, f) - images) ** 2)))
  grad = step(flows)
  assert grad.shape == flows.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0


# ----------------------------------------------------------------------------------------- physics


def _moving_photo(velocity, exposure, spacing, size=64, factor=4, linear_light=False):
  """A photo translating by `velocity` (pixels per sub-frame) filmed at `factor`x resolution.

  Each sub-frame is a crop of the full-resolution photo shifted by whole high-resolution pixels
  and box-downsampled, so sub-pixel motion needs no interpolation. Returns the middle sub-frame,
  the average of `exposure` sub-frames around it (in linear light if `linear_light`), and the
  true (flow_prev, flow_next).
  """
  photo = skimage.data.astronaut().astype(np.float32) / 255
  step = np.round(np.asarray(velocity) * factor).astype(int)       # (y, x), high-res pixels
  top, left = 100, 150
  hi = size * factor

  def sub_frame(k):  # content moves by +velocity per sub-frame: sample the photo at p - k v.
    y, x = top - k * step[0], left - k * step[1]
    return photo[y:y + hi, x:x + hi].reshape(size, factor, size, factor, 3).mean(axis=(1, 3))

  half = exposure // 2
  frames = np.stack([sub_frame(k) for k in range(-half, half + 1)])
  # I[t + D](p) = I[t](p - D v): the flow to the next frame is -D v, to the previous +D v.
  flow_next = uniform(*(-spacing * step[::-1] / factor), h=size, w=size)
  blurry = synthetic.average_exposure(frames, linear_light)
  return frames[half], blurry, -flow_next, flow_next


@pytest.mark.parametrize("method", ["conv", "warp"])
@pytest.mark.parametrize("velocity,spacing", [((0.5, 0.75), 9), ((-0.75, 0.25), 9),
                                              ((0.5, -0.75), 18)])
def test_reproduces_averaged_subframes(velocity, spacing, method):
  exposure = 9
  sharp, blurry, flow_prev, flow_next = _moving_photo(velocity, exposure, spacing)
  tau = blur.exposure_tau(exposure, spacing)
  out = reblur(sharp, flow_prev, flow_next, tau=tau, **METHOD_KW[method])
  margin = 8  # the model clamps at the border, the camera saw beyond it
  assert psnr(out, blurry, margin) >= 35
  assert psnr(sharp, blurry, margin) < 25
  # The midpoint-rule tau beats the one spanning only the sub-frames' timestamps, (E-1) / 2D.
  shorter = reblur(sharp, flow_prev, flow_next, tau=(exposure - 1) / (2 * spacing),
                   **METHOD_KW[method])
  assert psnr(out, blurry, margin) > psnr(shorter, blurry, margin) + 1


def test_linear_light_reproduces_a_camera_s_average_where_encoded_values_do_not():
  exposure = spacing = 9
  sharp, _, flow_prev, flow_next = _moving_photo((0.75, 0.5), exposure, spacing)
  # The camera integrates light: the sub-frames averaged in linear light, then encoded.
  _, linear_blurry, _, _ = _moving_photo((0.75, 0.5), exposure, spacing, linear_light=True)
  tau = blur.exposure_tau(exposure, spacing)
  margin = 8
  linear = reblur(sharp, flow_prev, flow_next, tau=tau, linear_light=True)
  encoded = reblur(sharp, flow_prev, flow_next, tau=tau)
  assert psnr(linear, linear_blurry, margin) >= 35
  assert psnr(linear, linear_blurry, margin) > psnr(encoded, linear_blurry, margin) + 3
  # No motion, no blur, down to black (the floor that keeps the gradient finite is < 1 level).
  still = reblur(sharp, 0 * flow_prev, 0 * flow_next, tau=tau, linear_light=True)
  np.testing.assert_allclose(still, sharp, atol=1 / 255)


# --------------------------------------------------------------------------------------- bad input


def test_bad_input_raises_value_error():
  image = np.zeros((8, 8, 3), np.float32)
  flow = np.zeros((8, 8, 2), np.float32)
  cases = [
      (dict(flow_next=np.zeros((8, 9, 2), np.float32)), r"flow_next must have shape \[H, W, 2\]"),
      (dict(flow_prev=np.zeros((8, 8, 3), np.float32)), r"flow_prev must have shape \[H, W, 2\]"),
      (dict(sharp=np.zeros((8, 8, 3), np.uint8)), "sharp must be a float image"),
      (dict(sharp=np.zeros((8, 8), np.float32)), r"sharp must have shape \[H, W, C\]"),
      (dict(flow_next=np.zeros((8, 8, 2), np.int32)), "flow_next must be a float"),
      (dict(tau=0.0), r"tau must be in \(0, 1\]"),
      (dict(tau=1.5), r"tau must be in \(0, 1\]"),
      (dict(method="splat"), "method must be one of"),
      (dict(max_disp=0), "max_disp must be a positive integer"),
      (dict(method="warp", samples=0), "samples must be a positive integer"),
      (dict(method="warp", tau=-1.0), "tau must be > 0"),
  ]
  for override, message in cases:
    args = dict(sharp=image, flow_prev=flow, flow_next=flow) | override
    with pytest.raises(ValueError, match=message):
      blur.reblur(**args)
  with pytest.raises(ValueError, match=r"flow_next must have shape \[B, H, W, 2\]"):
    blur.reblur_batch(image[None], None, flow)
  # warp has no flow table: long exposures are fine there.
  assert blur.reblur(image, flow, flow, method="warp", tau=1.5).shape == image.shape


def test_segments_inside_marks_pixels_whose_segments_leave_the_frame():
  flow_next = jnp.zeros((6, 8, 2)).at[..., 0].set(3.0)  # 1.5 px to the right at tau 0.5.
  inside = blur.segments_inside(None, flow_next, tau=0.5)
  assert inside.shape == (6, 8)
  np.testing.assert_array_equal(inside.all(axis=0), [True] * 6 + [False] * 2)
  flow_prev = jnp.zeros((6, 8, 2)).at[..., 1].set(-4.0)  # 2 px up.
  both = blur.segments_inside(flow_prev, flow_next, tau=0.5)
  np.testing.assert_array_equal(both, inside & (jnp.arange(6) >= 2)[:, None])
  assert blur.segments_inside(flow_prev[None], flow_next[None], tau=0.5).shape == (1, 6, 8)


def test_smooth_motion_leaves_out_a_margin_around_motion_boundaries():
  # Two layers: columns 0-5 still, 6-11 moving 3 px right; the boundary is between 5 and 6.
  flow_next = jnp.zeros((2, 5, 12, 2)).at[:, :, 6:, 0].set(3.0)
  smooth = blur.smooth_motion(None, flow_next, threshold=1.0, margin=2)
  assert smooth.shape == (2, 5, 12)
  np.testing.assert_array_equal(smooth[0, 0], [True] * 3 + [False] * 6 + [True] * 3)
  np.testing.assert_array_equal(blur.smooth_motion(None, flow_next, margin=0)[1, 4],
                                [True] * 5 + [False] * 2 + [True] * 5)
  # A difference under the threshold is smooth motion; flow_prev's boundaries count too.
  assert bool(blur.smooth_motion(None, flow_next * 0.3, threshold=1.0).all())
  flow_prev = jnp.zeros((2, 5, 12, 2)).at[:, 3:, :, 1].set(-2.0)
  both = blur.smooth_motion(flow_prev, flow_next, margin=0)
  np.testing.assert_array_equal(both[0, :, 0], [True, True, False, False, True])
