"""The training input pipeline: augmentation geometry, groups, sharding, determinism, resume."""

import itertools

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags

from reblur_jax.data import pipeline
from reblur_jax.data import prepare

SHIFT = (2, -1)  # (dx, dy): frame k+1 shows at p what frame k shows at p + SHIFT.


def _moving_clip(rng, size=(24, 40), length=3):
  """A clip of a texture moving by a whole pixel per frame, with its exact flows.

  Frame k is `texture[y + k dy, x + k dx]`, so `I[k+1](p) = I[k](p + SHIFT)`: `flow_next = SHIFT`
  and `flow_prev = -SHIFT` everywhere (docs/conventions.md).
  """
  h, w = size
  dx, dy = SHIFT
  margin = 2 * length
  texture = rng.integers(0, 256, (h + 2 * margin, w + 2 * margin, 3), dtype=np.uint8)
  top, left = margin + np.arange(length) * dy, margin + np.arange(length) * dx
  blurry = np.stack([texture[y:y + h, x:x + w] for y, x in zip(top, left)])
  flow = np.broadcast_to(np.array(SHIFT, np.float32), (length, h, w, 2))
  return {"blurry": blurry, "sharp": blurry.copy(), "flow_next": flow.copy(), "flow_prev": -flow,
          "tau": np.float32(0.5), "sequence": b"moving", "frame": 1}


def _indexed_source(count, size=(16, 16), length=3):
  """Examples whose pixels all equal their index (mod 256), to trace them through batches."""
  return [{"blurry": [np.full((*size, 3), i % 256, np.uint8)] * length,
           "sharp": [np.full((*size, 3), i % 256, np.uint8)] * length,
           "sequence": b"s", "frame": i} for i in range(count)]


def _ids(batch):
  return [int(round(v * 255)) for v in batch["blurry"][:, 0, 0, 0, 0]]


def _assert_same_batches(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def _assert_warps_to(other, frame, u, v):
  """`other(p) == frame(p + (u, v))` wherever `p + (u, v)` lies inside the frame."""
  h, w = frame.shape[:2]
  ys, xs = np.mgrid[max(0, -v):h - max(0, v), max(0, -u):w - max(0, u)]
  np.testing.assert_array_equal(other[ys, xs], frame[ys + v, xs + u])


# -- One clip -------------------------------------------------------------------------------------


def test_crops_and_flips_keep_the_flow_convention():
  rng = np.random.default_rng(0)
  clip = _moving_clip(rng)
  flips_seen = set()
  for seed in range(16):
    out = pipeline.augment_clip(clip, np.random.default_rng(seed), crop_size=(12, 20))
    images, flow_next, flow_prev = out["blurry"], out["flow_next"], out["flow_prev"]
    assert images.shape == (3, 12, 20, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(out["sharp"], images)  # Same crop and flips for every feature.
    u, v = (int(c) for c in flow_next[1, 0, 0])
    flips_seen.add((u, v))
    assert (abs(u), abs(v)) == (abs(SHIFT[0]), abs(SHIFT[1]))
    np.testing.assert_array_equal(flow_prev, -flow_next)
    # The convention still holds after the transform: I[t+1](p) = I[t](p + flow_next(p)).
    _assert_warps_to(images[2], images[1], u, v)
    _assert_warps_to(images[0], images[1], -u, -v)
  assert flips_seen == {(2, -1), (-2, -1), (2, 1), (-2, 1)}  # All four flip combinations.


def test_crop_windows_are_uniform_and_shared_by_frames():
  clip = {"blurry": np.arange(3 * 6 * 7 * 3, dtype=np.uint8).reshape(3, 6, 7, 3)}
  corners = set()
  for seed in range(200):
    out = pipeline.augment_clip(clip, np.random.default_rng(seed), crop_size=(4, 4), flips=False)
    values = np.round(out["blurry"] * 255).astype(np.uint8)
    top, left = np.argwhere(clip["blurry"][0, :, :, 0] == values[0, 0, 0, 0])[0]
    np.testing.assert_array_equal(values, clip["blurry"][:, top:top + 4, left:left + 4])
    corners.add((int(top), int(left)))
  assert corners == set(itertools.product(range(3), range(4)))


def test_clip_length_keeps_the_middle_frames():
  clip = {"blurry": np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1).repeat(3, -1)}
  out = pipeline.augment_clip(clip, np.random.default_rng(0), clip_length=5, flips=False)
  np.testing.assert_allclose(out["blurry"][:, 0, 0, 0] * 255, [1, 2, 3, 4, 5], atol=1e-4)
  for bad in (4, 9):
    with pytest.raises(ValueError, match="clip_length must be odd and between 1 and the stored"):
      pipeline.augment_clip(clip, np.random.default_rng(0), clip_length=bad)


def test_a_cut_replaces_the_frames_from_a_neighbour_outwards_in_every_feature():
  # Pixel value = row * 6 + column (0-35) + 40 * frame: each frame's crop window is readable.
  grid = np.arange(36, dtype=np.uint8).reshape(6, 6)
  clip = {key: np.stack([np.repeat((grid + 40 * t)[..., None], 3, -1) for t in range(5)])
          for key in ("blurry", "sharp")}
  cut_frames = set()
  for seed in range(64):
    out = pipeline.augment_clip(clip, np.random.default_rng(seed), crop_size=4, flips=False,
                                cut_probability=1.0)
    np.testing.assert_array_equal(out["sharp"], out["blurry"])  # Features stay consistent.
    values = np.round(out["blurry"][:, 0, 0, 0] * 255).astype(int)
    corners = values % 40
    assert (values // 40 == np.arange(5)).all()  # Frames keep their time, only the place moves.
    moved = tuple(int(t) for t in np.flatnonzero(corners != corners[2]))
    # The cut runs from a neighbour of the middle frame to one end of the clip.
    assert moved in {(), (0,), (0, 1), (3, 4), (4,)}  # () when the other window is the same.
    cut_frames.add(moved)
  assert cut_frames >= {(0,), (0, 1), (3, 4), (4,)}
  unchanged = pipeline.augment_clip(clip, np.random.default_rng(0), crop_size=4, flips=False)
  corners = np.round(unchanged["blurry"][:, 0, 0, 0] * 255).astype(int) % 40
  assert len(set(corners)) == 1
  with pytest.raises(ValueError, match="cut_probability needs a crop_size"):
    pipeline.augment_clip(clip, np.random.default_rng(0), cut_probability=0.5)


def test_crop_larger_than_frames_is_an_error():
  with pytest.raises(ValueError, match=r"crop_size \(32, 32\) is larger than the frames"):
    pipeline.augment_clip(_moving_clip(np.random.default_rng(0)), np.random.default_rng(0),
                          crop_size=32)


# -- Batches --------------------------------------------------------------------------------------


def test_groups_have_exact_counts_and_their_own_features():
  rng = np.random.default_rng(0)
  labeled = [_moving_clip(rng) for _ in range(5)]
  unlabeled = _indexed_source(7)
  batches = pipeline.create_train_iterator(
      labeled=labeled, unlabeled=unlabeled, labeled_batch_size=4, unlabeled_batch_size=2,
      crop_size=(16, 16), process_count=1, process_index=0)
  batch = next(batches)
  shapes = jax.tree.map(lambda x: (x.shape, x.dtype.name), batch)
  assert shapes == {
      "labeled": {"blurry": ((4, 3, 16, 16, 3), "float32"), "sharp": ((4, 3, 16, 16, 3), "float32"),
                  "flow_next": ((4, 3, 16, 16, 2), "float32"),
                  "flow_prev": ((4, 3, 16, 16, 2), "float32"), "tau": ((4,), "float32")},
      "unlabeled": {"blurry": ((2, 3, 16, 16, 3), "float32")},
  }
  assert 0.0 <= batch["labeled"]["blurry"].min() and batch["labeled"]["blurry"].max() <= 1.0
  only_unlabeled = next(pipeline.create_train_iterator(
      unlabeled=unlabeled, unlabeled_batch_size=3, process_count=1, process_index=0))
  assert list(only_unlabeled) == ["unlabeled"]


def test_epochs_cover_the_data_and_reshuffle():
  batches = pipeline.create_train_iterator(
      labeled=_indexed_source(10), labeled_batch_size=5, seed=3, process_count=1, process_index=0)
  epochs = [sum((_ids(next(batches)["labeled"]) for _ in range(2)), []) for _ in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(10))
  assert epochs[0] != epochs[1] != epochs[2]


def test_hosts_read_disjoint_shards():
  seen = []
  for host in range(2):
    batches = pipeline.create_train_iterator(
        labeled=_indexed_source(12), labeled_batch_size=4, seed=0, process_index=host,
        process_count=2)
    first_epoch = [next(batches)["labeled"] for _ in range(3)]
    assert all(b["blurry"].shape[0] == 2 for b in first_epoch)  # 4 global = 2 per host.
    seen.append(sorted(sum((_ids(b) for b in first_epoch), [])))
  assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(12))


@pytest.mark.parametrize("kwargs, message", [
    (dict(labeled_batch_size=3, process_count=2, process_index=0), "multiple of process_count 2"),
    (dict(unlabeled_batch_size=2), "no unlabeled dataset was given"),
    (dict(labeled_batch_size=0), "Both batch sizes are 0"),
    (dict(labeled_batch_size=2, process_count=2, process_index=2), "process_index must be in"),
    (dict(labeled_batch_size=2, crop_size=(0, 4)), "crop_size must be a positive int"),
    (dict(labeled_batch_size=2, crop_size=20), r"crop_size \(20, 20\) is larger than the frames"),
    (dict(labeled_batch_size=2, clip_length=5), "between 1 and the stored clip length 3"),
])
def test_bad_arguments(kwargs, message):
  kwargs = {"labeled": _indexed_source(4), "process_count": 1, "process_index": 0, **kwargs}
  with pytest.raises(ValueError, match=message):
    pipeline.create_train_dataset(**kwargs)


def test_empty_or_unprepared_datasets_are_errors(tmp_path):
  with pytest.raises(ValueError, match="'train' of the given examples is empty"):
    pipeline.create_train_dataset(labeled=[], labeled_batch_size=2, process_count=1,
                                  process_index=0)
  with pytest.raises(FileNotFoundError, match="reblur_jax.data.prepare gopro --config=blur "):
    pipeline.create_train_dataset(labeled="gopro/blur", labeled_batch_size=2,
                                  data_dir=str(tmp_path), process_count=1, process_index=0)


# -- Determinism and resume on the prepared synthetic set -----------------------------------------


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  prepare.prepare("synthetic_blur", config="tiny", data_dir=data_dir)
  return data_dir


def _synthetic_iterator(data_dir, **kwargs):
  return pipeline.create_train_iterator(
      labeled="synthetic_blur/tiny", unlabeled="synthetic_blur/tiny", labeled_split="train",
      unlabeled_split="test", labeled_batch_size=4, unlabeled_batch_size=2, crop_size=48,
      data_dir=data_dir, process_count=1, process_index=0, **kwargs)


def test_same_seed_same_batches_other_seed_others(synthetic_dir):
  a, b, c = (_synthetic_iterator(synthetic_dir, seed=s) for s in (7, 7, 8))
  for _ in range(3):
    batch_a, batch_c = next(a), next(c)
    _assert_same_batches(batch_a, next(b))
    assert not np.array_equal(batch_a["labeled"]["sharp"], batch_c["labeled"]["sharp"])
  assert set(batch_a["labeled"]) == {"blurry", "sharp", "flow_next", "flow_prev", "tau"}


def test_restored_iterator_continues_exactly(synthetic_dir, tmp_path):
  run = _synthetic_iterator(synthetic_dir, seed=1)
  for _ in range(3):
    next(run)
  # Saved with the training checkpoint through grain's Orbax handler.
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(run)))
    manager.wait_until_finished()
  expected = [next(run) for _ in range(4)]
  resumed = _synthetic_iterator(synthetic_dir, seed=1)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed)))
  for batch in expected:
    _assert_same_batches(batch, next(resumed))


def test_worker_processes_give_the_same_batches_and_resume(synthetic_dir):
  if not flags.FLAGS.is_parsed():  # Starting grain's workers reads an absl flag.
    flags.FLAGS.mark_as_parsed()
  expected = list(itertools.islice(_synthetic_iterator(synthetic_dir, seed=2), 4))
  workers = _synthetic_iterator(synthetic_dir, seed=2, worker_count=1)
  _assert_same_batches(expected[:2], [next(workers), next(workers)])
  state = workers.get_state()
  resumed = _synthetic_iterator(synthetic_dir, seed=2, worker_count=1)
  resumed.set_state(state)
  _assert_same_batches(expected[2:], [next(resumed), next(resumed)])
  workers.close()
  resumed.close()
