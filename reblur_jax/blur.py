"""Differentiable blur formation model of Reblur2Deblur (`docs/blur_model.md`).

A blurry frame is modelled from the sharp frame `S` and the flows to its neighbours as

    B(p) = 1/2 mean_{s in [0, 1]} S(p + s tau flow_next(p))
         + 1/2 mean_{s in [0, 1]} S(p + s tau flow_prev(p)),

sampling `S` bilinearly with coordinates clamped to the image (docs/conventions.md). Two
discretisations:

* `conv`, the paper's: a table of line kernels on the (2R+1)^2 offset grid, one per integer flow,
  interpolated bilinearly in flow space (Eq. 9) and correlated with the image. Each table kernel
  is a bilinear splat of points spread along its segment, so the four table kernels around a
  flow have at most 72 non-zero offsets between them (R = 16, tau = 1; out of 1089). `reblur`
  reads those from a sparse form of the table and gathers only them: the numbers of the dense
  per-pixel kernel, without ever building it.
* `warp`, the paper's ablation: `samples` bilinear warps per segment, averaged.

Arrays follow docs/conventions.md: images `float32 [H, W, C]` in [0, 1], flows `[H, W, 2]` in pixels
(channel 0 is x, channel 1 is y). `tau`, `method`, `max_disp`, `samples` and `linear_light` are
static.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

METHODS = ("conv", "warp")
GAMMA = 2.2  # Linear light as in GoPro's `blur_gamma`: average x**2.2, then take the 1/2.2 power.
_LINEAR_FLOOR = 1e-7  # (1e-7) ** (1 / GAMMA) = 0.17 of an 8-bit level; gradient <= 3e3.


def exposure_tau(exposure: int, spacing: int) -> float:
  """The `tau` of a blurry frame averaging `exposure` sub-frames, frames `spacing` sub-frames apart.

  Sub-frames are one time unit apart and the sharp frame is the middle one (time 0), so the
  blurry frame averages sub-frames at times -(E-1)/2 .. (E-1)/2. That average is the midpoint rule
  of the box [-E/2, E/2] (each sub-frame stands for one unit of exposure), i.e. E/2 units on each
  side. The flow to a neighbour spans `spacing` units, and the model's segment s*tau*flow, s in
  [0, 1], covers tau*spacing units: tau = E / (2 * spacing). E = D (no dead time) gives 0.5.

  Args:
    exposure: E, number of sub-frames averaged into one blurry frame; odd, so a middle one exists.
    spacing: D, sub-frames between consecutive blurry frames' timestamps; >= 1.

  Returns:
    tau, a float > 0 (> 1 only if E > 2D, which only `method="warp"` accepts).
  """
  if int(exposure) != exposure or exposure < 1 or exposure % 2 == 0:
    raise ValueError(f"exposure must be an odd positive integer (the sharp frame is the middle "
                     f"sub-frame), got {exposure!r}.")
  if int(spacing) != spacing or spacing < 1:
    raise ValueError(f"spacing must be a positive integer number of sub-frames, got {spacing!r}.")
  return exposure / (2 * spacing)


# ----------------------------------------------------------------------------- the lookup table


def _splat_points(max_disp: int, tau: float) -> int:
  """Points splatted per table kernel: <= 0.5 px apart along the longest segment, tau*R*sqrt(2)."""
  return max(1, math.ceil(2 * math.sqrt(2) * tau * max_disp))


@functools.lru_cache(maxsize=8)
def _kernel_table(max_disp: int, tau: float) -> np.ndarray:
  """`kernel_table` without the argument checks, computed once per (max_disp, tau)."""
  r = max_disp
  size = 2 * r + 1
  n = _splat_points(max_disp, tau)
  s = (np.arange(n) + 0.5) / n
  flows = np.arange(-r, r + 1)
  # Point j of the kernel for flow (u, v) sits at offset s_j * tau * (u, v), i.e. grid (y, x).
  y = r + tau * flows[:, None, None] * s                      # [v, 1, n]
  x = r + tau * flows[None, :, None] * s                      # [1, u, n]
  y, x = np.broadcast_arrays(y, x)                            # [v, u, n]
  y0, x0 = np.floor(y), np.floor(x)
  fy, fx = y - y0, x - x0
  table = np.zeros((size, size, size, size))
  entry = np.broadcast_to(np.arange(size * size).reshape(size, size, 1), y.shape)
  for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                    (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
    # tau <= 1 and s < 1 keep every point, and its bilinear neighbours, inside the grid.
    row, col = (y0 + dy).astype(int), (x0 + dx).astype(int)
    np.add.at(table.reshape(size * size, size, size), (entry, row, col), w / n)
  table.flags.writeable = False
  return table


def kernel_table(max_disp: int = 16, tau: float = 1.0) -> np.ndarray:
  """The paper's lookup table of line kernels (Fig. 3), for inspection.

  Args:
    max_disp: R, the largest flow component in pixels; the table has (2R+1)^2 entries.
    tau: exposure fraction in (0, 1], see `exposure_tau`.

  Returns:
    `float64 [2R+1, 2R+1, 2R+1, 2R+1]`, indexed `[v + R, u + R, dy + R, dx + R]`: the kernel for the
    integer flow (u, v), holding weight at offset (dx, dy); each kernel sums to 1. Read-only.
  """
  _check_table_args(max_disp, tau)
  return _kernel_table(int(max_disp), float(tau))


@functools.lru_cache(maxsize=8)
def _sparse_table(max_disp: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
  """The table grouped by flow cell, keeping only the offsets one of the cell's corners uses.

  A cell (v0, u0) in [-R, R-1]^2 has the integer flows (u0 + {0, 1}, v0 + {0, 1}) as corners
  (`_CORNERS` order). Returns `offsets int32 [M, 2, 2R * 2R]`, the (dy, dx) of entry m of cell
  (v0 + R) * 2R + (u0 + R), and `weights float32 [M, 4, 2R * 2R]`, the four corner kernels at that
  offset. Entry-major for `_sum_over`; one column per quantity because XLA:CPU gathers scalars
  about twice as fast as short rows. Padding entries have weight 0 at offset (0, 0).
  """
  r = max_disp
  table = _kernel_table(max_disp, tau)
  cells = np.stack([table[dv:dv + 2 * r, du:du + 2 * r] for dv, du in _CORNERS], axis=2)
  cells = cells.reshape(4 * r * r, 4, 2 * r + 1, 2 * r + 1)        # [cell, corner, y, x]
  support = [np.argwhere(np.any(corners != 0, axis=0)) for corners in cells]
  size = max(len(idx) for idx in support)
  offsets = np.zeros((size, 2, len(cells)), np.int32)
  weights = np.zeros((size, 4, len(cells)), np.float32)
  for i, (corners, idx) in enumerate(zip(cells, support)):
    offsets[:len(idx), :, i] = idx - r
    weights[:len(idx), :, i] = corners[:, idx[:, 0], idx[:, 1]].T
  return offsets, weights


# Corner order of a flow cell, as (dv, du): the order of `_sparse_table` and `_interpolate`.
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _flow_cell(flow, max_disp):
  """The table cell of clipped flows `[..., 2]` and their position in it.

  Returns int32 `(row, col)`, the cell's (v0 + R, u0 + R), and `(fu, fv)` in [0, 1], all `[...]`.
  Clipping makes the gradient zero beyond +-max_disp.
  """
  flow = jnp.clip(flow, -max_disp, max_disp)
  base = jnp.clip(jnp.floor(flow), -max_disp, max_disp - 1)
  fu, fv = jnp.moveaxis(flow - base, -1, 0)
  col, row = jnp.moveaxis(base.astype(jnp.int32) + max_disp, -1, 0)
  return row, col, fu, fv


def _interpolate(fu, fv, corners):
  """Bilinear interpolation in flow space (Eq. 9) of four values in `_CORNERS` order."""
  c00, c01, c10, c11 = corners
  return (1 - fv) * ((1 - fu) * c00 + fu * c01) + fv * ((1 - fu) * c10 + fu * c11)


def flow_to_kernel(flow_prev, flow_next, *, max_disp: int = 16, tau: float = 1.0):
  """The dense per-pixel kernel K(p) of the `conv` model (paper Eq. 8-9), for pictures and tests.

  Args:
    flow_prev: `[..., 2]` flows to the previous frame in pixels, or None (two-frame model).
    flow_next: `[..., 2]` flows to the next frame in pixels.
    max_disp: R; flows are clipped to [-R, R].
    tau: exposure fraction in (0, 1].

  Returns:
    `float32 [..., 2R+1, 2R+1]` kernels indexed `[dy + R, dx + R]`, each summing to 1, such that
    `B(p) = sum_o K(p)[o] S(clamp(p + o))` (`apply_kernel`).
  """
  _check_table_args(max_disp, tau)
  table = jnp.asarray(_kernel_table(int(max_disp), float(tau)), jnp.float32)

  def one(flow):
    row, col, fu, fv = _flow_cell(jnp.asarray(flow, jnp.float32), max_disp)
    corners = [table[row + dv, col + du] for dv, du in _CORNERS]
    return _interpolate(fu[..., None, None], fv[..., None, None], corners)

  if flow_prev is None:
    return one(flow_next)
  return 0.5 * (one(flow_next) + one(flow_prev))


def apply_kernel(sharp, kernel):
  """Correlates each pixel's neighbourhood with its own dense kernel: the literal formulation.

  Args:
    sharp: `float [H, W, C]` image.
    kernel: `float [H, W, K, K]` per-pixel kernels, K odd, indexed `[dy + K//2, dx + K//2]`.

  Returns:
    `[H, W, C]`, `out(p) = sum_o kernel(p)[o] * sharp(clamp(p + o))`. Gathers `[H, W, K*K, C]`
    patches: a reference for tests and benchmarks, far too heavy for training.
  """
  k = kernel.shape[-1]
  dy, dx = np.divmod(np.arange(k * k), k)
  y, x = _pixel_grid(*sharp.shape[:2])
  patches = _take(sharp, y[..., None] + dy - k // 2, x[..., None] + dx - k // 2)
  return jnp.einsum("hwkc,hwk->hwc", patches, kernel.reshape(*kernel.shape[:2], k * k))


# ----------------------------------------------------------------------------- sampling


def _take(image, rows, cols):
  """`image[clamp(rows), clamp(cols)]` for int arrays `[...]`: `[..., C]`, borders extended."""
  height, width, channels = image.shape
  index = jnp.clip(rows, 0, height - 1) * width + jnp.clip(cols, 0, width - 1)
  return jnp.take(image.reshape(height * width, channels), index, axis=0, mode="clip")


def _scale(weight, values):
  """`weight[..., None] * values` for `values [..., C]`, written channel by channel.

  With broadcasting, the backward pass reduces `grad * values` over C, which XLA:CPU hands to
  YNNPACK and runs 3-10 times slower than this fused elementwise form.
  """
  return jnp.stack([weight * values[..., c] for c in range(values.shape[-1])], axis=-1)


def _bilinear(image, y, x):
  """Samples `image [H, W, C]` bilinearly at float coordinates `[...]`, clamped: `[..., C]`."""
  y0, x0 = jnp.floor(y), jnp.floor(x)
  fy, fx = y - y0, x - x0
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  return (_scale((1 - fy) * (1 - fx), _take(image, y0, x0)) +
          _scale((1 - fy) * fx, _take(image, y0, x0 + 1)) +
          _scale(fy * (1 - fx), _take(image, y0 + 1, x0)) +
          _scale(fy * fx, _take(image, y0 + 1, x0 + 1)))


def _pixel_grid(height, width):
  return jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")


def _sum_over(term, xs, like):
  """`sum_i term(xs[i])` for terms shaped like `like`, in float32.

  A scan whose terms are recomputed in the backward pass, so neither pass holds more than a few
  `[H, W, C]` arrays: the whole point of the fast model (docs/conventions.md).
  """
  def step(total, x):
    return total + term(x), None
  total, _ = jax.lax.scan(step, jnp.zeros(like.shape, jnp.float32), xs)
  return total


def _conv_segment(sharp, flow, *, tau, max_disp, samples):
  """One segment of the `conv` model: the interpolated table kernel, over its non-zero offsets."""
  del samples
  offsets, table = _sparse_table(max_disp, tau)
  row, col, fu, fv = _flow_cell(flow, max_disp)
  cell = row * 2 * max_disp + col
  y, x = _pixel_grid(*sharp.shape[:2])

  @jax.checkpoint
  def entry(xs):
    offset, corner_weights = xs                                   # [2, cells], [4, cells]
    dy, dx = (jnp.take(column, cell, mode="clip") for column in offset)
    weight = _interpolate(fu, fv, [jnp.take(w, cell, mode="clip") for w in corner_weights])
    return _scale(weight, _take(sharp, y + dy, x + dx))

  return _sum_over(entry, (jnp.asarray(offsets), jnp.asarray(table)), sharp)


def _warp_segment(sharp, flow, *, tau, max_disp, samples):
  """One segment of the `warp` model: `samples` bilinear warps at s_j = (j + 1/2) / samples."""
  del max_disp
  y, x = _pixel_grid(*sharp.shape[:2])
  u, v = jnp.moveaxis(tau * flow, -1, 0)

  @jax.checkpoint
  def warp(s):
    return _bilinear(sharp, y + s * v, x + s * u) / samples

  return _sum_over(warp, (jnp.arange(samples, dtype=jnp.float32) + 0.5) / samples, sharp)


_SEGMENT = {"conv": _conv_segment, "warp": _warp_segment}


# ----------------------------------------------------------------------------- the model


def reblur(sharp, flow_prev, flow_next, *, tau: float = 1.0, method: str = "conv",
           max_disp: int = 16, samples: int = 8, linear_light: bool = False):
  """Blurs a sharp frame along its flows to the neighbouring frames (docs/conventions.md).

  Args:
    sharp: `float [H, W, C]` sharp frame, in [0, 1] by convention.
    flow_prev: `float [H, W, 2]` flow to the previous frame in pixels (`I[t-1](p) ~= S(p +
      flow_prev(p))`), or None for the two-frame model, where the next segment carries all mass.
    flow_next: `float [H, W, 2]` flow to the next frame in pixels.
    tau: fraction of each flow the exposure covers; (0, 1] for `conv`, > 0 for `warp`.
    method: "conv" (lookup-table kernels, the paper's model) or "warp" (averaged warps).
    max_disp: R, `conv` only: each flow component is clipped to [-R, R] (the table's range);
      beyond it the kernel saturates and the flow gradient is zero. `warp` has no limit.
    samples: `warp` only: bilinear warps per segment.
    linear_light: blur in linear light, as a camera integrates: `sharp ** GAMMA` is blurred and
      the result re-encoded (`** (1 / GAMMA)`); False blurs the encoded values (the paper's).

  Returns:
    `[H, W, C]` blurry frame, same dtype as `sharp`. NaNs are not checked (that needs the values,
    which `jit` does not have): a NaN flow at p makes B(p) NaN; a NaN image pixel reaches every
    output whose kernel reads it. Differentiable in `sharp` and both flows; jit/vmap-safe.
  """
  _check_inputs(sharp, flow_prev, flow_next, tau=tau, method=method, max_disp=max_disp,
                samples=samples, batched=False)
  image = jnp.asarray(sharp)
  if linear_light:
    image = jnp.maximum(image, 0.0) ** GAMMA
  segment = functools.partial(_SEGMENT[method], image, tau=float(tau),
                              max_disp=int(max_disp), samples=int(samples))
  if flow_prev is None:
    blurry = segment(flow_next)
  else:
    blurry = 0.5 * (segment(flow_next) + segment(flow_prev))
  if linear_light:  # The floor keeps the 1/GAMMA power's gradient finite at black.
    blurry = jnp.maximum(blurry, _LINEAR_FLOOR) ** (1 / GAMMA)
  return blurry.astype(jnp.result_type(sharp))


def segments_inside(flow_prev, flow_next, *, tau: float) -> jax.Array:
  """Pixels whose blur segments stay inside the frame: `bool [..., H, W]`.

  True where both segments `p + s tau flow`, s in [0, 1], end inside the frame (only the next
  one for the two-frame model, `flow_prev` None). Elsewhere `reblur` clamps at the border, where
  the camera saw what lies beyond it: the model does not hold there, which matters most on
  training crops, whose borders are inside the frame the blur was made in.

  Args:
    flow_prev, flow_next: `[..., H, W, 2]` flows in pixels (`flow_prev` may be None).
    tau: exposure fraction of each flow a segment spans.
  """
  height, width = flow_next.shape[-3:-1]
  ys, xs = jnp.mgrid[:height, :width]
  inside = jnp.ones(flow_next.shape[:-1], bool)
  for flow in (flow_prev, flow_next):
    if flow is not None:  # A segment is straight: inside if its end is.
      x_end, y_end = xs + tau * flow[..., 0], ys + tau * flow[..., 1]
      inside &= (x_end >= 0) & (x_end <= width - 1) & (y_end >= 0) & (y_end <= height - 1)
  return inside


def smooth_motion(flow_prev, flow_next, *, threshold: float = 1.0, margin: int = 2
                  ) -> jax.Array:
  """Pixels away from motion boundaries: `bool [..., H, W]`.

  False within `margin` pixels of a pixel whose flow differs from a 3x3 neighbour's by
  `threshold` pixels or more, in either flow (`flow_prev` may be None). At a motion boundary
  the camera integrates two layers that move differently, and one layer hides the other for
  part of the exposure; the per-pixel line kernel of `reblur` models neither, and flows
  estimated on blurry frames are least accurate there. The defaults were chosen for TV-L1 flows
  on the study's validation split (docs/baselines.md).

  Args:
    flow_prev, flow_next: `[..., H, W, 2]` flows in pixels.
    threshold: flow difference to a neighbour, pixels, that marks a boundary.
    margin: pixels around a boundary also left out.
  """
  height, width = flow_next.shape[-3:-1]
  boundary = jnp.zeros(flow_next.shape[:-1], bool)
  for flow in (flow_prev, flow_next):
    if flow is None:
      continue
    padded = jnp.pad(flow, [(0, 0)] * (flow.ndim - 3) + [(1, 1), (1, 1), (0, 0)], mode="edge")
    for dy in range(3):
      for dx in range(3):
        neighbour = padded[..., dy:dy + height, dx:dx + width, :]
        boundary |= jnp.linalg.norm(neighbour - flow, axis=-1) >= threshold
  window = (1,) * (boundary.ndim - 2) + (2 * margin + 1,) * 2
  near = jax.lax.reduce_window(boundary, False, jax.lax.bitwise_or, window,
                               (1,) * boundary.ndim, "SAME")
  return ~near


@functools.partial(jax.jit, static_argnames=("tau", "method", "max_disp", "samples",
                                             "linear_light"))
def reblur_batch(sharp, flow_prev, flow_next, *, tau: float = 1.0, method: str = "conv",
                 max_disp: int = 16, samples: int = 8, linear_light: bool = False):
  """`reblur` over a batch, jitted: `sharp [B, H, W, C]`, flows `[B, H, W, 2]` (or None).

  Returns `[B, H, W, C]`, equal to `reblur` frame by frame. Usable inside other jitted code.
  """
  _check_inputs(sharp, flow_prev, flow_next, tau=tau, method=method, max_disp=max_disp,
                samples=samples, batched=True)
  one = functools.partial(reblur, tau=tau, method=method, max_disp=max_disp, samples=samples,
                          linear_light=linear_light)
  return jax.vmap(one)(sharp, flow_prev, flow_next)


# ----------------------------------------------------------------------------- argument checks


def _check_table_args(max_disp, tau):
  if isinstance(max_disp, bool) or int(max_disp) != max_disp or max_disp < 1:
    raise ValueError(f"max_disp must be a positive integer number of pixels, got {max_disp!r}.")
  if not 0 < tau <= 1:
    raise ValueError(f"tau must be in (0, 1] for the kernel table (method='conv'), got {tau!r}; "
                     "use method='warp' for longer exposures.")


def _check_inputs(sharp, flow_prev, flow_next, *, tau, method, max_disp, samples, batched):
  lead = "B, H, W" if batched else "H, W"
  rank = 4 if batched else 3
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if method == "conv":
    _check_table_args(max_disp, tau)
  elif not tau > 0:
    raise ValueError(f"tau must be > 0, got {tau!r}.")
  if isinstance(samples, bool) or int(samples) != samples or samples < 1:
    raise ValueError(f"samples must be a positive integer, got {samples!r}.")
  if jnp.ndim(sharp) != rank:
    raise ValueError(f"sharp must have shape [{lead}, C], got {jnp.shape(sharp)}.")
  if not jnp.issubdtype(jnp.result_type(sharp), jnp.floating):
    raise ValueError(f"sharp must be a float image in [0, 1], got dtype {jnp.result_type(sharp)}; "
                     "convert uint8 images with `x.astype(np.float32) / 255`.")
  expected = (*jnp.shape(sharp)[:-1], 2)
  for name, flow in (("flow_next", flow_next), ("flow_prev", flow_prev)):
    if flow is None and name == "flow_prev":
      continue
    if jnp.shape(flow) != expected:
      raise ValueError(f"{name} must have shape [{lead}, 2] = {expected} to match sharp "
                       f"{jnp.shape(sharp)}, got {jnp.shape(flow)}.")
    if not jnp.issubdtype(jnp.result_type(flow), jnp.floating):
      raise ValueError(f"{name} must be a float flow in pixels, got dtype {jnp.result_type(flow)}.")
