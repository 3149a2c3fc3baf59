"""Fixed flows for the reblur loss: TV-L1 on the blurry frames, carried by the unlabeled clips."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from reblur_jax import blur
from reblur_jax.data import estimated_flows
from reblur_jax.data import pipeline
from reblur_jax.training import losses

SHIFT = (2, -1)  # (dx, dy): frame k+1 shows at p what frame k shows at p + SHIFT.


def _smooth_moving_clip(size=(40, 48), length=5, seed=0):
  """A smooth texture moving by SHIFT per frame: `flow_next = SHIFT`, `flow_prev = -SHIFT`."""
  h, w = size
  margin = 2 * length
  noise = np.random.default_rng(seed).random((h + 2 * margin, w + 2 * margin, 3))
  texture = scipy.ndimage.gaussian_filter(noise, (1.5, 1.5, 0))
  texture = (255 * (texture - texture.min()) / np.ptp(texture)).astype(np.uint8)
  dx, dy = SHIFT
  frames = [texture[margin + k * dy:margin + k * dy + h, margin + k * dx:margin + k * dx + w]
            for k in range(length)]
  return {"blurry": np.stack(frames), "sequence": b"moving", "frame": 2}


def _interior(flow, border=6):
  return flow[border:-border, border:-border]


def test_tvl1_measures_the_motion_in_the_flow_convention():
  flows = estimated_flows.middle_flows(_smooth_moving_clip()["blurry"])
  np.testing.assert_allclose(_interior(flows["estimated_flow_next"]).mean((0, 1)), SHIFT,
                             atol=0.2)
  np.testing.assert_allclose(_interior(flows["estimated_flow_prev"]).mean((0, 1)),
                             np.negative(SHIFT), atol=0.2)
  with pytest.raises(ValueError, match=r"need \[T >= 3, H, W, 3\] frames"):
    estimated_flows.middle_flows(_smooth_moving_clip(length=2)["blurry"])


def test_each_clip_s_flows_are_computed_once(monkeypatch):
  calls = []
  real = estimated_flows.middle_flows
  monkeypatch.setattr(estimated_flows, "middle_flows",
                      lambda blurry: calls.append(1) or real(blurry))
  source = estimated_flows.WithMiddleFlows([_smooth_moving_clip(seed=s) for s in range(2)])
  first = source[1]
  again = source[-1]
  assert len(calls) == 1 and len(source) == 2
  assert sorted(first) == ["blurry", *sorted(estimated_flows.KEYS)]
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])


def test_unlabeled_clips_carry_their_flows_through_crops_and_flips():
  clips = [_smooth_moving_clip(seed=s) for s in range(2)]
  flows = [estimated_flows.middle_flows(c["blurry"]) for c in clips]
  batches = pipeline.create_train_iterator(
      unlabeled=clips, unlabeled_batch_size=2, crop_size=(24, 32), clip_length=3,
      unlabeled_flows="tvl1", process_count=1, process_index=0)
  signs = set()
  for _ in range(16):
    batch = next(batches)["unlabeled"]
    assert sorted(batch) == ["blurry", *sorted(estimated_flows.KEYS)]
    assert batch["blurry"].shape == (2, 3, 24, 32, 3)
    assert batch["estimated_flow_next"].shape == (2, 24, 32, 2)
    for frames, clip_next, clip_prev in zip(batch["blurry"], batch["estimated_flow_next"],
                                            batch["estimated_flow_prev"]):
      # The flows are flipped with the frames: I[t+1](p) = I[t](p + flow_next(p)) still holds.
      u, v = np.round(np.median(clip_next.reshape(-1, 2), axis=0)).astype(int)
      assert (abs(u), abs(v)) == (abs(SHIFT[0]), abs(SHIFT[1]))
      np.testing.assert_array_equal(frames[2, 4:-4, 4:-4], frames[1, 4 + v:20 + v, 4 + u:28 + u])
      np.testing.assert_allclose(np.median(clip_prev.reshape(-1, 2), axis=0), (-u, -v), atol=0.5)
      signs.add((int(np.sign(u)), int(np.sign(v))))
  assert len(signs) == 4  # All four flip combinations, flows mirrored with their frames.
  assert np.abs(flows[0]["estimated_flow_next"]).max() > 0
  with pytest.raises(ValueError, match="unlabeled_flows must be one of"):
    pipeline.create_train_iterator(unlabeled=clips, unlabeled_batch_size=2,
                                   unlabeled_flows="raft", process_count=1, process_index=0)


@pytest.mark.parametrize("frames,linear_light", [(3, False), (2, False), (3, True)])
def test_reblur_loss_with_fixed_flows_blurs_the_middle_frame_only(frames, linear_light):
  rng = np.random.default_rng(0)
  middle = jnp.asarray(rng.random((1, 2, 16, 16, 3), np.float32))
  blurry = jnp.asarray(rng.random((2, 16, 16, 3), np.float32))
  flow_prev, flow_next = (jnp.asarray(rng.uniform(-3, 3, (2, 16, 16, 2)), jnp.float32)
                          for _ in range(2))
  kwargs = dict(frames=frames, tau=0.5, method="conv", max_disp=4, samples=4,
                linear_light=linear_light)
  loss, reblurred = losses.reblur_loss(middle, blurry, (flow_prev, flow_next), **kwargs)
  expected = blur.reblur_batch(middle[0], flow_prev if frames == 3 else None, flow_next,
                               tau=0.5, max_disp=4, linear_light=linear_light)
  np.testing.assert_allclose(reblurred, expected, atol=1e-6)
  np.testing.assert_allclose(loss, jnp.mean((expected - blurry) ** 2), rtol=1e-5)
  grad = jax.grad(lambda m: losses.reblur_loss(m, blurry, (flow_prev, flow_next), **kwargs)[0])
  assert float(jnp.abs(grad(middle)).sum()) > 0


def test_reblur_loss_mask_inside_ignores_pixels_whose_segments_leave_the_crop():
  rng = np.random.default_rng(1)
  middle = jnp.asarray(rng.random((1, 2, 16, 16, 3), np.float32))
  flows = tuple(jnp.zeros((2, 16, 16, 2)).at[..., 0].set(4.0) for _ in range(2))
  kwargs = dict(frames=3, tau=0.5, method="conv", max_disp=4, samples=4)
  _, reblurred = losses.reblur_loss(middle, middle[0], flows, **kwargs)
  # The observation differs from the model only in the last two columns, where the segments
  # (2 px to the right) leave the crop: the masked loss does not see it.
  observed = reblurred.at[:, :, -2:].add(0.5)
  masked, _ = losses.reblur_loss(middle, observed, flows, mask="inside", **kwargs)
  plain, _ = losses.reblur_loss(middle, observed, flows, **kwargs)
  assert float(masked) == pytest.approx(0.0, abs=1e-10) and float(plain) > 1e-3
  observed = reblurred.at[:, :, :2].add(0.5)  # Inside: seen, averaged over inside pixels only.
  masked, _ = losses.reblur_loss(middle, observed, flows, mask="inside", **kwargs)
  assert float(masked) == pytest.approx(0.25 * 2 / 14, rel=1e-4)


def test_reblur_loss_mask_smooth_motion_ignores_motion_boundaries():
  rng = np.random.default_rng(2)
  middle = jnp.asarray(rng.random((1, 2, 16, 16, 3), np.float32))
  # The right half moves 2 px down, the left half is still: a boundary between columns 7 and 8.
  flows = tuple(jnp.zeros((2, 16, 16, 2)).at[:, :, 8:, 1].set(2.0) for _ in range(2))
  kwargs = dict(frames=3, tau=0.5, method="conv", max_disp=4, samples=4)
  _, reblurred = losses.reblur_loss(middle, middle[0], flows, **kwargs)
  observed = reblurred.at[:, :, 7:9].add(0.5)  # Wrong only at the boundary: not seen.
  masked, _ = losses.reblur_loss(middle, observed, flows, mask="smooth_motion", **kwargs)
  assert float(masked) == pytest.approx(0.0, abs=1e-10)
  observed = reblurred.at[:, :, :2].add(0.5)  # Far from it: seen.
  masked, _ = losses.reblur_loss(middle, observed, flows, mask="smooth_motion", **kwargs)
  assert float(masked) == pytest.approx(0.25 * 2 / 10, rel=1e-4)  # 10 columns kept of 16.
  with pytest.raises(ValueError, match="reblur mask 'occluded'"):
    losses.reblur_loss(middle, observed, flows, mask="occluded", **kwargs)
