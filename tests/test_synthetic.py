"""The synthetic blurry-video generator: physics, flow directions, options, determinism, splits."""

import functools

import numpy as np
import pytest
import scipy.ndimage

from reblur_jax import blur
from reblur_jax.data import synthetic

SIZE = dict(height=48, width=64)
FRAMES = 4


def _psnr(x, y, mask=None):
  """PSNR in dB of float images `[..., H, W, 3]` in `[0, 1]`, over the pixels `mask [..., H, W]`."""
  error = np.mean((x - y) ** 2, axis=-1)
  return -10 * np.log10(np.mean(error if mask is None else error[mask]))


def _warp(image, flow):
  """`image(p + flow(p))`, bilinear, border-clamped: `[H, W, 3]`, `[H, W, 2]` -> `[H, W, 3]`."""
  ys, xs = np.mgrid[:image.shape[0], :image.shape[1]]
  coords = [ys + flow[..., 1], xs + flow[..., 0]]
  return np.stack([scipy.ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
                   for c in range(3)], axis=-1)


@pytest.fixture(scope="module")
def clip():
  return synthetic.render_sequence(0, num_frames=FRAMES, return_boundaries=True, **SIZE)


def test_arrays_follow_the_interface(clip):
  n, h, w = FRAMES, SIZE["height"], SIZE["width"]
  for key, shape, dtype in (("blurry", (n, h, w, 3), np.uint8), ("sharp", (n, h, w, 3), np.uint8),
                            ("flow_next", (n, h, w, 2), np.float32),
                            ("flow_prev", (n, h, w, 2), np.float32),
                            ("boundary", (n, h, w), np.bool_)):
    assert clip[key].shape == shape and clip[key].dtype == dtype, key
  assert clip["tau"] == blur.exposure_tau(9, 9) == 0.5


@functools.cache
def _reblurred(max_speed):
  """A clip at `max_speed` and `reblur(sharp, flow_prev, flow_next, tau)` of it, as floats."""
  clip = synthetic.render_sequence(1, num_frames=FRAMES, max_speed=max_speed,
                                   return_boundaries=True, **SIZE)
  sharp, blurry = clip["sharp"] / np.float32(255), clip["blurry"] / np.float32(255)
  model = np.asarray(blur.reblur_batch(sharp, clip["flow_prev"], clip["flow_next"],
                                       tau=clip["tau"]))
  return sharp, blurry, model, ~clip["boundary"]


@pytest.mark.parametrize("max_speed", [4.0, 12.0])
def test_reblur_of_sharp_frame_reproduces_blurry_frame(max_speed):
  """The physics: reblur(sharp, ground-truth flows, tau) = blurry away from occlusion boundaries."""
  _, blurry, model, away = _reblurred(max_speed)
  assert away.mean() > 0.25  # The check covers a good part of the frame, not a sliver.
  for t in range(FRAMES):  # First and last frames included: their sub-frames extend the motion.
    assert _psnr(model[t], blurry[t], away[t]) >= 30.0, t


def test_ground_truth_flows_explain_the_blur():
  """Under strong motion the model is far better than no blur, and the boundary mask removes
  what it cannot explain (a wrong flow or tau would pass neither)."""
  sharp, blurry, model, away = _reblurred(12.0)
  assert _psnr(model, blurry, away) > _psnr(sharp, blurry, away) + 6.0
  assert _psnr(model, blurry, away) > _psnr(model, blurry) + 3.0


def test_flows_follow_the_conventions():
  """`I[t+1](p) = I[t](p + flow_next(p))` and likewise `flow_prev`, and not the other way round."""
  clip = synthetic.render_sequence(2, num_frames=3, num_objects=0, return_boundaries=True, **SIZE)
  sharp = clip["sharp"] / np.float32(255)
  assert not clip["boundary"][:, 8:-8, 8:-8].any()  # No objects: only blur leaving the frame.
  for flow, neighbour in ((clip["flow_next"][1], sharp[2]), (clip["flow_prev"][1], sharp[0])):
    assert np.abs(flow).max() > 2.0
    inner = (slice(8, -8), slice(8, -8))  # Where p + flow(p) stays in the frame.
    right = _psnr(_warp(sharp[1], flow)[inner], neighbour[inner])
    wrong = _psnr(_warp(sharp[1], -flow)[inner], neighbour[inner])
    assert right >= 33.0 and right > wrong + 6.0, (right, wrong)


def test_objects_make_the_flow_non_uniform(clip):
  """Several layers with their own motion: far from the single translation of a camera pan."""
  flow = clip["flow_next"][1]
  distinct = np.unique(np.round(flow, 0).reshape(-1, 2), axis=0)
  assert len(distinct) >= 4
  assert np.ptp(flow[..., 0]) > 2.0 or np.ptp(flow[..., 1]) > 2.0


def test_exposure_and_spacing_set_the_blur():
  sharp_only = synthetic.render_sequence(4, num_frames=2, exposure=1, **SIZE)
  np.testing.assert_array_equal(sharp_only["blurry"], sharp_only["sharp"])
  short = synthetic.render_sequence(4, num_frames=2, exposure=9, spacing=18, **SIZE)
  long = synthetic.render_sequence(4, num_frames=2, exposure=9, spacing=9, **SIZE)
  assert short["tau"] == 0.25 and long["tau"] == 0.5
  # Motion is set per frame interval, so the same scene; half the exposure, less blur.
  np.testing.assert_array_equal(short["sharp"], long["sharp"])
  np.testing.assert_array_equal(short["flow_next"], long["flow_next"])
  blur_of = lambda c: _psnr(c["sharp"] / 255.0, c["blurry"] / 255.0)
  assert blur_of(short) > blur_of(long) + 3.0


def test_linear_light_and_noise_change_only_the_blurry_frames(clip):
  kwargs = dict(num_frames=FRAMES, **SIZE)
  linear = synthetic.render_sequence(0, linear_light=True, **kwargs)
  noisy = synthetic.render_sequence(0, noise_std=0.02, **kwargs)
  for other in (linear, noisy):
    for key in ("sharp", "flow_next", "flow_prev"):
      np.testing.assert_array_equal(other[key], clip[key])
  # Power means: averaging in linear light (x^2.2) never darkens, and brightens where blur mixes.
  difference = linear["blurry"].astype(int) - clip["blurry"]
  assert difference.min() >= -1 and (difference > 2).mean() > 0.01
  noise = (noisy["blurry"].astype(float) - clip["blurry"]) / 255
  assert abs(noise.std() - 0.02) < 0.003 and abs(noise.mean()) < 0.003


def test_deterministic_per_seed_and_prefix_stable(clip):
  again = synthetic.render_sequence(0, num_frames=2, return_boundaries=True, **SIZE)
  for key in ("blurry", "sharp", "flow_next", "flow_prev", "boundary"):
    np.testing.assert_array_equal(again[key], clip[key][:2])
  other = synthetic.render_sequence(1, num_frames=2, **SIZE)
  assert not np.array_equal(other["sharp"], clip["sharp"][:2])


def test_splits_use_disjoint_real_photos():
  def photos(split):
    return set(synthetic.PHOTOS[split]["background"]) | set(synthetic.PHOTOS[split]["foreground"])

  splits = {split: photos(split) for split in synthetic.PHOTOS}
  assert not splits["train"] & splits["test"]
  assert not splits["validation"] & (splits["train"] | splits["test"])
  # All ship with scikit-image or matplotlib: no download. `dead_leaves` is drawn, not loaded.
  for name in set.union(*splits.values()) - {"dead_leaves"}:
    photo = synthetic.load_photo(name)
    # The text and page scans are the smallest (172 and 191 rows).
    assert photo.ndim == 3 and photo.shape[-1] == 3 and min(photo.shape[:2]) >= 160, name
    assert photo.dtype == np.float32 and 0.0 <= photo.min() and photo.max() <= 1.0, name
  train = synthetic.render_sequence(0, split="train", num_frames=1, **SIZE)
  test = synthetic.render_sequence(0, split="test", num_frames=1, **SIZE)
  assert _psnr(train["sharp"] / 255.0, test["sharp"] / 255.0) < 20.0


@pytest.mark.parametrize("kwargs, name", [
    (dict(exposure=4), "exposure"), (dict(exposure=0), "exposure"), (dict(spacing=0), "spacing"),
    (dict(split="val"), "split"), (dict(num_frames=0), "num_frames"), (dict(height=0), "height"),
    (dict(noise_std=-0.1), "noise_std"), (dict(max_speed=-1.0), "max_speed"),
    (dict(num_objects=-1), "num_objects"),
])
def test_bad_arguments_are_named(kwargs, name):
  args = dict(num_frames=1, **SIZE) | kwargs
  with pytest.raises(ValueError, match=name):
    synthetic.render_sequence(0, **args)


def test_dead_leaves_have_edges_at_every_scale():
  image = synthetic.dead_leaves(np.random.default_rng(0), 128)
  assert image.shape == (128, 128, 3) and image.dtype == np.float32
  assert 0.0 <= image.min() and image.max() <= 1.0
  # Occluding discs of many sizes: the image varies at fine and at coarse scale alike.
  fine = np.abs(np.diff(image, axis=0)).mean()
  coarse = np.abs(image[16:] - image[:-16]).mean()
  assert fine > 0.005 and coarse > 2 * fine
  assert not np.array_equal(image, synthetic.dead_leaves(np.random.default_rng(1), 128))


def test_only_training_scenes_are_recoloured():
  # Test and validation frames keep the photos' own colours: the same scene rendered twice is
  # identical, while a training photo's colours change.
  for split in ("test", "validation"):
    a = synthetic.render_sequence(3, split=split, num_frames=1, **SIZE)
    b = synthetic.render_sequence(3, split=split, num_frames=1, **SIZE)
    np.testing.assert_array_equal(a["sharp"], b["sharp"])
  photo = synthetic.load_photo("coffee")
  recoloured = synthetic._augment_colours(np.random.default_rng(0), photo)
  assert recoloured.shape == photo.shape and np.abs(recoloured - photo).mean() > 0.02
