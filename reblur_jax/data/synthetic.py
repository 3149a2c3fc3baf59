"""Synthetic blurry video: real photos moved by known motion, blurred by averaging sub-frames.

A scene is a stack of layers, each a photo from `skimage.data` (bundled, so no download):
a background seen by a camera that pans, rolls and zooms along a smooth random trajectory, and
`num_objects` foreground objects, soft-edged blobs cut from other photos, each with its own smooth
random motion and depth order. So the flow is non-uniform, with parallax and occlusion, as in real
dynamic scenes.

Time. Blurry frame `i` has timestamp `i` (in frame intervals); the high-rate sub-frames lie
`1 / spacing` apart, and frame `i` averages the `exposure` sub-frames centred on its timestamp
(the middle one is the sharp ground truth), like GoPro data built from 240 fps video. Each layer's
affine map (output pixel -> photo pixel) is drawn at the frame timestamps (knots) from a sum of
random sinusoids and interpolated *linearly* between knots. Linear interpolation of the matrices
makes what a pixel sees during `[i, i + 1]` travel along a straight line in frame `i`, at
constant speed: inside a layer the piecewise-linear blur model of `reblur_jax.blur` holds exactly,
and the only departures from it are occlusion boundaries, soft object edges, the sub-frames being
discrete, and 8-bit quantisation. Sub-frames beyond the first and last frames follow the same
trajectories, so every frame is rendered the same way.

Flow (docs/conventions.md, "Which flow is which"): `flow_next[i](p)` is where frame `i` must be
sampled to see what pixel `p` sees in frame `i + 1`, `I[i+1](p) = I[i](p + flow_next[i](p))`; it
lives on frame `i + 1`'s grid, so at `p` it is the flow of the layer visible at `p` in frame `i + 1`
(what a flow network given (frame `i + 1`, frame `i`) estimates). `flow_prev` is the same with
frame `i - 1`. `reblur(sharp[i], flow_prev[i], flow_next[i], tau=tau)` reproduces `blurry[i]`
away from occlusion boundaries; `return_boundaries=True` marks where it cannot
(docs/synthetic_data.md gives the measured agreement).

Photos: train, validation and test use disjoint photos (`PHOTOS`), so validation and test scenes
are unseen content; training scenes also include procedural dead-leaves images and random colours.
Everything random comes from `np.random.default_rng` seeded by `seed`: one seed, one sequence, and
fewer frames give a prefix of the same sequence.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import matplotlib.cbook
import numpy as np
import PIL.Image
import scipy.ndimage
import skimage.data
import skimage.transform

from reblur_jax import blur

# Photos of the scenes, all bundled with scikit-image or matplotlib (no download). Train, validation
# and test never share a photo. Colour photos: scikit-image's (`cat` duplicates `chelsea`;
# `colorwheel` and `logo` are drawings) and matplotlib's `grace_hopper`. Greyscale photos and
# textures (`GREYSCALE`) are given random colours in training. `dead_leaves` is a procedural
# scene of occluding discs in colours taken from the training photos, edges and sizes at all
# scales as in natural images: with it and the colour augmentation (`_augment_colours`) the
# network meets far more colours and structures than the handful of photos hold. Objects never
# reuse the background's photo.
PHOTOS = {
    "train": {
        "background": ("astronaut", "coffee", "rocket", "immunohistochemistry", "brick", "grass",
                       "gravel", "moon", "dead_leaves", "dead_leaves", "dead_leaves"),
        "foreground": ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina", "cell",
                       "clock", "page", "text", "dead_leaves"),
    },
    "test": {
        "background": ("chelsea", "motorcycle"),
        "foreground": ("chelsea", "motorcycle", "hubble_deep_field"),
    },
    "validation": {
        "background": ("grace_hopper", "camera"),
        "foreground": ("grace_hopper", "camera", "coins"),
    },
}
GREYSCALE = ("brick", "grass", "gravel", "moon", "cell", "clock", "page", "text", "camera", "coins")
# The training photos whose pixels colour the dead-leaves discs.
_LEAF_COLOURS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina")


# Sinusoid angular frequencies of the trajectories, in radians per frame: periods of 8 to 60
# frames, from slow pans to shake.
_FREQUENCIES = (0.1, 0.8)
_NUM_SINUSOIDS = 3
# The speed bound of a sequence is this fraction of `max_speed` (`max_rotation`, `max_zoom`).
_SPEED_FRACTION = (0.5, 1.0)
# Scene scale: a photo is resized so that its short side spans this many output frame sizes.
_PHOTO_SPAN = (2.0, 3.0)
# Object radii as a fraction of the frame's short side; the edge is soft over about 1 pixel.
_OBJECT_RADIUS = (0.1, 0.25)
_OBJECT_EDGE = 1.0


def load_photo(name: str) -> np.ndarray:
  """A bundled photo (a name of `PHOTOS` other than `dead_leaves`) as `float32 [h, w, 3]` in
  `[0, 1]`; greyscale ones have three equal channels."""
  if name == "motorcycle":
    image = skimage.data.stereo_motorcycle()[0]  # Left view; the right one is nearly the same.
  elif name == "grace_hopper":
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
      image = np.asarray(PIL.Image.open(file).convert("RGB"))
  else:
    image = getattr(skimage.data, name)()
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  return image[..., :3].astype(np.float32) / 255.0


def dead_leaves(rng: np.random.Generator, size: int, *, num_discs: int = 2000,
                min_radius: float = 1.5) -> np.ndarray:
  """A dead-leaves image `float32 [size, size, 3]` in `[0, 1]`.

  Discs fall on the canvas one after another, each hiding what it covers; radii follow the
  `r^-3` law that makes the image scale-invariant like natural images, from `min_radius` to
  `size / 4` pixels. Each disc takes the colour of a random pixel of a training photo
  (`_LEAF_COLOURS`), shaded by a gentle linear gradient so that discs are not flat.
  """
  colours = _leaf_colours()
  image = colours[rng.integers(len(colours))] * np.ones((size, size, 3), np.float32)
  r_max = size / 4
  # Inverse-CDF sampling of p(r) ~ r^-3 on [min_radius, r_max].
  u = rng.uniform(size=num_discs)
  radii = (min_radius ** -2 - u * (min_radius ** -2 - r_max ** -2)) ** -0.5
  centres = rng.uniform(-r_max, size + r_max, (num_discs, 2))
  fills = colours[rng.integers(len(colours), size=num_discs)]
  slopes = rng.normal(0.0, 0.15, (num_discs, 2)) / r_max
  for (cx, cy), r, fill, slope in zip(centres, radii, fills, slopes):
    x0, x1 = max(0, int(cx - r)), min(size, int(cx + r) + 2)
    y0, y1 = max(0, int(cy - r)), min(size, int(cy + r) + 2)
    if x0 >= x1 or y0 >= y1:
      continue
    ys, xs = np.mgrid[y0:y1, x0:x1]
    dx, dy = xs - cx, ys - cy
    # Anti-aliased edge, about one pixel wide.
    cover = np.clip(r + 0.5 - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)[..., None]
    shade = np.clip(fill * (1.0 + slope[0] * dx + slope[1] * dy)[..., None], 0.0, 1.0)
    image[y0:y1, x0:x1] = (1 - cover) * image[y0:y1, x0:x1] + cover * shade
  return image.astype(np.float32)


@functools.cache
def _leaf_colours() -> np.ndarray:
  """Every 8th pixel of each `_LEAF_COLOURS` photo: `float32 [N, 3]`."""
  return np.concatenate([load_photo(n)[::8, ::8].reshape(-1, 3) for n in _LEAF_COLOURS])


def _augment_colours(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
  """A training photo in random colours: channels permuted, saturation, per-channel gains and
  brightness changed; greyscale photos get a random tint. Applied to a layer's photo before
  rendering, so the blur is formed from the new colours exactly."""
  photo = photo[..., rng.permutation(3)]
  grey = photo.mean(axis=-1, keepdims=True)
  photo = grey + rng.uniform(0.3, 1.4) * (photo - grey)
  gains = rng.uniform(0.75, 1.25, 3)
  photo = photo * gains / gains.mean() * rng.uniform(0.6, 1.3) + rng.uniform(-0.08, 0.08)
  return np.clip(photo, 0.0, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _Layer:
  """One photo under motion.

  Attributes:
    photo: `float32 [h, w, 3]` in `[0, 1]`, resized to the scene scale.
    matrices: `float64 [K, 3, 3]`, homogeneous affine maps from output pixel `(x, y)` to photo pixel
      `(x, y)` at frame times `first_knot, ..., first_knot + K - 1`.
    first_knot: frame time of `matrices[0]`.
    shape: `None` for the background (opaque everywhere), else `(cx, cy, a, b, n)`: a superellipse
      `|x / a|^n + |y / b|^n <= 1` in photo pixels around `(cx, cy)`, the object's silhouette.
  """

  photo: np.ndarray
  matrices: np.ndarray
  first_knot: int
  shape: tuple[float, float, float, float, float] | None

  def matrix(self, time: float) -> np.ndarray:
    """The affine map at `time` (frame units), linear between knots: `[3, 3]`."""
    knot = int(np.floor(time))
    frac = time - knot
    lo = self.matrices[knot - self.first_knot]
    if frac == 0.0:
      return lo
    return (1.0 - frac) * lo + frac * self.matrices[knot + 1 - self.first_knot]

  def alpha(self, points: np.ndarray) -> np.ndarray:
    """Coverage in `[0, 1]` of photo points `[M, 2]`: `[M]`, soft over about one pixel."""
    if self.shape is None:
      return np.ones(points.shape[0], np.float32)
    cx, cy, a, b, n = self.shape
    level = (np.abs((points[:, 0] - cx) / a) ** n + np.abs((points[:, 1] - cy) / b) ** n) ** (1 / n)
    return np.clip(0.5 + (1.0 - level) * min(a, b) / _OBJECT_EDGE, 0.0, 1.0).astype(np.float32)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Maps points `[M, 2]` by a homogeneous affine `[3, 3]`."""
  return points @ matrix[:2, :2].T + matrix[:2, 2]


def _sample(photo: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Bilinear samples of `photo [h, w, 3]` at `(x, y)` points `[M, 2]`: `[M, 3]`.

  Outside the photo, the photo is mirrored about its border pixels: a continuous, static scene
  without holes, so the motion model stays exact wherever the camera wanders.
  """
  coords = points[:, ::-1].T
  return np.stack([scipy.ndimage.map_coordinates(photo[..., c], coords, order=1, mode="mirror")
                   for c in range(photo.shape[-1])], axis=-1)


def _sinusoids(rng: np.random.Generator, times: np.ndarray, max_rate: float,
               dims: int) -> np.ndarray:
  """A smooth random path `[len(times), dims]` moving less than `max_rate` per frame (2-norm).

  A sum of sinusoids along random directions with random frequencies and phases; their
  `amplitude * frequency`, which bounds the speed, add up to a random fraction of `max_rate`.
  Bounded, so the camera keeps to its photo and objects to the frame.
  """
  freq = rng.uniform(*_FREQUENCIES, _NUM_SINUSOIDS)
  phase = rng.uniform(0.0, 2 * np.pi, _NUM_SINUSOIDS)
  direction = rng.standard_normal((_NUM_SINUSOIDS, dims))
  direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
  weight = rng.uniform(0.0, 1.0, _NUM_SINUSOIDS)
  rate = max_rate * rng.uniform(*_SPEED_FRACTION) * weight / weight.sum()
  return np.sin(np.outer(times, freq) + phase) @ ((rate / freq)[:, None] * direction)


def _layer_matrices(anchor_screen, anchor_photo, angle, shift, log_zoom) -> np.ndarray:
  """Homogeneous maps `[K, 3, 3]` showing photo point `anchor_photo` at `anchor_screen + shift`.

  Around that point the photo is rotated by `angle` (radians) and magnified by `exp(log_zoom)`
  on screen, one photo pixel per output pixel at zoom 1. `angle`, `log_zoom` `[K]`, `shift`
  `[K, 2]` in output pixels.
  """
  cos, sin = np.cos(angle), np.sin(angle)
  linear = np.exp(-log_zoom)[:, None, None] * np.stack(
      [np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
  origin = np.asarray(anchor_screen) + shift
  matrices = np.zeros((len(angle), 3, 3))
  matrices[:, :2, :2] = linear
  matrices[:, :2, 2] = np.asarray(anchor_photo) - np.einsum("kij,kj->ki", linear, origin)
  matrices[:, 2, 2] = 1.0
  return matrices


def _make_layer(rng, photo, *, times, height, width, max_speed, max_rotation, max_zoom,
                is_object) -> _Layer:
  """Resizes `photo` to the scene scale and draws its trajectory over the knots `times`.

  The background's photo centre starts at the frame centre; an object is a blob around a random
  point of its photo, starting anywhere in the middle 70 % of the frame, turned at random.
  """
  span = rng.uniform(*_PHOTO_SPAN) * max(height, width)
  photo = skimage.transform.rescale(
      photo, span / min(photo.shape[:2]), anti_aliasing=True, channel_axis=-1).astype(np.float32)
  h, w, _ = photo.shape
  shift = _sinusoids(rng, times, max_speed, 2)
  angle = _sinusoids(rng, times, np.deg2rad(max_rotation), 1)[:, 0]
  log_zoom = _sinusoids(rng, times, np.log1p(max_zoom), 1)[:, 0]
  if is_object:
    radii = rng.uniform(*_OBJECT_RADIUS, 2) * min(height, width)
    margin = np.linalg.norm(radii) + 1.0  # Keeps the turning blob inside its photo.
    anchor_photo = (rng.uniform(margin, max(margin, w - margin)),
                    rng.uniform(margin, max(margin, h - margin)))
    anchor_screen = (rng.uniform(0.15, 0.85) * (width - 1), rng.uniform(0.15, 0.85) * (height - 1))
    angle = angle + rng.uniform(0.0, 2 * np.pi)
    shape = (*anchor_photo, *radii, rng.uniform(2.0, 6.0))
  else:
    anchor_photo, anchor_screen = ((w - 1) / 2, (h - 1) / 2), ((width - 1) / 2, (height - 1) / 2)
    shape = None
  matrices = _layer_matrices(anchor_screen, anchor_photo, angle, shift, log_zoom)
  return _Layer(photo, matrices, int(times[0]), shape)


def _make_scene(rng, split, *, num_objects, times, **motion) -> list[_Layer]:
  """Background first, then objects from the bottom to the top of the depth order; training
  scenes in random colours (`_augment_colours`)."""
  photos = PHOTOS[split]
  background = rng.choice(photos["background"])
  candidates = [p for p in photos["foreground"] if p != background or p == "dead_leaves"]
  names = [background] + list(rng.choice(candidates, num_objects))
  layers = []
  for i, name in enumerate(names):
    if name == "dead_leaves":
      photo = dead_leaves(rng, 3 * max(motion["height"], motion["width"]))
    else:
      photo = load_photo(name)
    if split == "train":
      photo = _augment_colours(rng, photo)
    layers.append(_make_layer(rng, photo, times=times, is_object=i > 0, **motion))
  return layers


def _coverage(layers, time, grid) -> tuple[list[np.ndarray], np.ndarray]:
  """Photo points `[M, 2]` of each layer at `time`, and each layer's coverage: `[L, M]`."""
  points = [_apply(layer.matrix(time), grid) for layer in layers]
  return points, np.stack([layer.alpha(p) for layer, p in zip(layers, points)])


def _visible(alphas: np.ndarray) -> np.ndarray:
  """Index of the top layer covering each pixel at least halfway: `[M]` int."""
  covering = alphas >= 0.5
  return len(alphas) - 1 - np.argmax(covering[::-1], axis=0)


def _render(layers, time, grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The sub-frame at `time`: image `[M, 3]`, visible layer `[M]`, soft-edge pixels `[M]` bool."""
  points, alphas = _coverage(layers, time, grid)
  image = _sample(layers[0].photo, points[0])
  for layer, p, a in zip(layers[1:], points[1:], alphas[1:]):
    inside = a > 0
    weight = a[inside, None]
    image[inside] = (1 - weight) * image[inside] + weight * _sample(layer.photo, p[inside])
  soft = np.any((alphas > 0) & (alphas < 1), axis=0)
  return image, _visible(alphas), soft


def _flow(layers, visible, time, other, grid) -> np.ndarray:
  """Flow `[M, 2]` from frame `other`'s grid to frame `time`, per the layer `visible` at `other`.

  For layer maps `A(t)` (output -> photo), pixel `p` at time `other` shows the photo point that
  `A(time)^-1 A(other) p` shows at `time`.
  """
  flows = np.stack([
      _apply(np.linalg.inv(layer.matrix(time)) @ layer.matrix(other), grid) - grid
      for layer in layers])
  return np.take_along_axis(flows, visible[None, :, None], axis=0)[0]


def _boundaries(visible, soft, flows, tau) -> np.ndarray:
  """Pixels `[H, W]` bool of one frame where the blur model cannot hold.

  `visible [S, H, W]`, `soft [S, H, W]`: the visible layer and soft-edge pixels at the frame's
  sub-frames and at its neighbours' timestamps; `flows [2, H, W, 2]`: its flow_next and flow_prev.
  A pixel is marked where its layer changes over time, where a layer edge lies within the reach of
  its blur segments (plus one pixel for bilinear sampling), or where a segment leaves the frame
  (`reblur` clamps to the border, the scene does not end there).
  """
  edges = np.any(visible != visible[:1], axis=0) | np.any(soft, axis=0)
  for axis in (1, 2):
    step = np.any(np.diff(visible, axis=axis) != 0, axis=0)
    for pad in ((1, 0), (0, 1)):  # Both pixels of a step are on the edge.
      edges |= np.pad(step, [pad if a == axis - 1 else (0, 0) for a in range(2)])
  height, width = edges.shape
  ys, xs = np.mgrid[:height, :width]
  ends_x, ends_y = xs + tau * flows[..., 0], ys + tau * flows[..., 1]
  leaves = np.any((ends_x < 0) | (ends_x > width - 1) | (ends_y < 0) | (ends_y > height - 1),
                  axis=0)
  if not edges.any():
    return leaves
  reach = tau * np.max(np.linalg.norm(flows, axis=-1), axis=0)
  return leaves | (scipy.ndimage.distance_transform_edt(~edges) <= reach + 1.0)


def _check_args(split, num_frames, height, width, exposure, spacing, **nonnegative):
  if split not in PHOTOS:
    raise ValueError(f"split must be one of {sorted(PHOTOS)}, got {split!r}.")
  for name, value, low in (("num_frames", num_frames, 1), ("height", height, 1),
                           ("width", width, 1), ("num_objects", nonnegative.pop("num_objects"), 0)):
    if int(value) != value or value < low:
      raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
  if spacing is not None and (int(spacing) != spacing or spacing < 1):
    raise ValueError("spacing must be a positive integer number of sub-frames, or None for "
                     f"spacing = exposure; got {spacing!r}.")
  for name, value in nonnegative.items():
    if not value >= 0:
      raise ValueError(f"{name} must be >= 0, got {value!r}.")
  blur.exposure_tau(exposure, spacing or 1)  # Validates `exposure` (a positive odd integer).


def _exposures(layers, grid, *, num_frames, exposure, spacing):
  """Yields, per blurry frame, its sub-frames' images `[E, M, 3]`, visible layers `[E, M]` and
  soft-edge pixels `[E, M]`; sub-frames shared by overlapping exposures are rendered once."""
  half = (exposure - 1) // 2
  cache = {}
  for i in range(num_frames):
    subframes = range(i * spacing - half, i * spacing + half + 1)
    cache = {k: cache[k] if k in cache else _render(layers, k / spacing, grid) for k in subframes}
    yield tuple(np.stack(parts) for parts in zip(*cache.values()))


def average_exposure(images: np.ndarray, linear_light: bool) -> np.ndarray:
  """The blurry frame `[...]` from sub-frames `[E, ...]` in `[0, 1]`: their mean, in linear light
  (gamma `blur.GAMMA`) if `linear_light`."""
  if linear_light:
    return np.mean(images ** blur.GAMMA, axis=0) ** (1 / blur.GAMMA)
  return np.mean(images, axis=0)


def render_sequence(seed: int, *, split: str = "train", num_frames: int, height: int, width: int,
                    exposure: int = 9, spacing: int | None = None, linear_light: bool = False,
                    noise_std: float = 0.0, max_speed: float = 12.0, num_objects: int = 3,
                    max_rotation: float = 1.0, max_zoom: float = 0.01,
                    return_boundaries: bool = False) -> dict:
  """Renders one blurry video with its sharp frames, ground-truth flows and `tau`.

  Args:
    seed: the sequence's seed; the same arguments and seed give the same arrays.
    split: "train", "validation" or "test", which use disjoint photos (`PHOTOS`); "train" scenes
      are also recoloured at random.
    num_frames: N, blurry frames; a shorter sequence is a prefix of a longer one.
    height, width: frame size in pixels.
    exposure: E, odd number of high-rate sub-frames averaged per blurry frame (the paper's 9).
    spacing: sub-frames between consecutive blurry frames; None means `exposure` (no dead time,
      `tau = 0.5`, like GoPro blur made from consecutive 240 fps frames).
    linear_light: average the sub-frames in linear light (gamma 2.2, GoPro's `blur_gamma`).
    noise_std: standard deviation of Gaussian sensor noise added to the blurry frames, in `[0, 1]`
      units (the sharp frames stay clean).
    max_speed: bound on each layer's translation, in output pixels per frame interval (the motion
      scale); each sequence moves at a random 50-100% of it at its fastest.
    num_objects: independently moving foreground objects.
    max_rotation, max_zoom: bounds on each layer's rotation (degrees) and relative zoom per frame
      interval; they add about `r * (pi / 180 * max_rotation + max_zoom)` pixels of flow at
      distance `r` from the layer's centre of rotation.
    return_boundaries: also return `boundary`, the pixels where the blur model cannot hold.

  Returns:
    `blurry uint8 [N, H, W, 3]`, `sharp uint8 [N, H, W, 3]` (each blurry frame's middle sub-frame),
    `flow_next`, `flow_prev` `float32 [N, H, W, 2]` (pixels, `(u, v)`, see module docstring),
    `tau` (float, `blur.exposure_tau(exposure, spacing)`), and with `return_boundaries`,
    `boundary bool [N, H, W]`: pixels whose layer changes during the exposure or whose blur
    segments reach a layer edge or leave the frame, where `reblur` of `sharp` cannot reproduce
    `blurry`.
  """
  _check_args(split, num_frames, height, width, exposure, spacing, noise_std=noise_std,
              max_speed=max_speed, num_objects=num_objects, max_rotation=max_rotation,
              max_zoom=max_zoom)
  spacing = spacing or exposure
  tau = blur.exposure_tau(exposure, spacing)
  # Knots: the frames, their neighbours and as many frame intervals as the exposures spill over.
  spill = max(1, math.ceil((exposure - 1) / 2 / spacing))
  times = np.arange(-spill, num_frames + spill, dtype=np.float64)
  # The split is part of the entropy: the same seed gives unrelated motions in train and test.
  scene_seed, noise_seed = np.random.SeedSequence([seed, list(PHOTOS).index(split)]).spawn(2)
  layers = _make_scene(np.random.default_rng(scene_seed), split, num_objects=num_objects,
                       times=times, height=height, width=width, max_speed=max_speed,
                       max_rotation=max_rotation, max_zoom=max_zoom)
  noise_rng = np.random.default_rng(noise_seed)
  ys, xs = np.mgrid[:height, :width]
  grid = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)
  visible_at = {t: _visible(_coverage(layers, t, grid)[1]) for t in range(-1, num_frames + 1)}

  out = {key: [] for key in ("blurry", "sharp", "flow_next", "flow_prev", "boundary")}
  exposures = _exposures(layers, grid, num_frames=num_frames, exposure=exposure, spacing=spacing)
  for i, (images, visible, soft) in enumerate(exposures):
    blurry = average_exposure(images, linear_light)
    out["blurry"].append(blurry + noise_std * noise_rng.standard_normal(blurry.shape))
    out["sharp"].append(images[len(images) // 2])
    out["flow_next"].append(_flow(layers, visible_at[i + 1], i, i + 1, grid))
    out["flow_prev"].append(_flow(layers, visible_at[i - 1], i, i - 1, grid))
    if return_boundaries:
      visible = np.concatenate([visible, [visible_at[i - 1], visible_at[i + 1]]])
      flows = np.stack([out["flow_next"][-1], out["flow_prev"][-1]])
      out["boundary"].append(_boundaries(
          visible.reshape(-1, height, width), soft.reshape(-1, height, width),
          flows.reshape(2, height, width, 2), tau))

  def frames(key, *channels):
    return np.stack(out[key]).reshape(num_frames, height, width, *channels)

  result = {
      "blurry": to_uint8(frames("blurry", 3)),
      "sharp": to_uint8(frames("sharp", 3)),
      "flow_next": frames("flow_next", 2).astype(np.float32),
      "flow_prev": frames("flow_prev", 2).astype(np.float32),
      "tau": tau,
  }
  if return_boundaries:
    result["boundary"] = frames("boundary")
  return result


def to_uint8(images: np.ndarray) -> np.ndarray:
  """`[0, 1]` floats -> `uint8`, clipped and rounded."""
  return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)
