"""TFDS builders on small fake GoPro / DVD / video-folder trees, and the synthetic set.

Each test writes the directory tree it needs (32x48 frames of random pixels, so any mix-up of
frames shows) and builds into a temporary data dir with `prepare.prepare`. Examples are read back
with `as_data_source`, as training reads them (no TensorFlow).
"""

import os
import re
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from reblur_jax.data import prepare
from reblur_jax.data import synthetic
from reblur_jax.data.builders import clips
from reblur_jax.data.builders import dvd
from reblur_jax.data.builders import frames
from reblur_jax.data.builders import synthetic_blur

SIZE = (32, 48)


def _write_frames(folder, count, seed, *, ext="png", size=SIZE, first=1, digits=6):
  """Writes `count` random RGB frames named from `first`; returns them as written (decoded)."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  written = []
  for i in range(count):
    path = os.path.join(folder, f"{first + i:0{digits}d}.{ext}")
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    written.append(np.asarray(Image.open(path).convert("RGB")))
  return written


def _write_gopro(root, counts):
  """GOPRO_Large/{split}/<SEQ>/{blur,blur_gamma,sharp}; `counts`: {split: [frames per seq]}."""
  tree = {}
  for split, lengths in counts.items():
    for s, length in enumerate(lengths):
      name = f"GOPR03{s}{len(split)}_11_00"  # e.g. train: GOPR0305_11_00, test: GOPR0304_11_00.
      base = os.path.join(root, "GOPRO_Large", split, name)
      # File numbers need not start at 1 (datasets.md): start at 47.
      tree[name] = {
          folder: _write_frames(os.path.join(base, folder), length, 3 * len(tree) + f, first=47)
          for f, folder in enumerate(("blur", "blur_gamma", "sharp"))
      }
  return tree


def _build(tmp_path, name, config, manual_dir=None, **kwargs):
  return prepare.prepare(name, config=config, data_dir=str(tmp_path / "tfds"),
                         manual_dir=manual_dir and str(manual_dir), **kwargs)


def _frames(example, key):
  return np.stack(example[key])


def _assert_clip(example, key, sequence_frames, indices):
  expected = np.stack([sequence_frames[i] for i in indices])
  np.testing.assert_array_equal(_frames(example, key), expected)


# -- Cutting sequences into clips -----------------------------------------------------------------


@pytest.mark.parametrize("clip_length", [1, 3, 7])
def test_windows_pad_sequence_ends_and_gaps_by_replication(clip_length):
  readable = [0, 1, 2, 4, 5, 6, 7, 8, 9]  # Frame 3 unreadable: runs 0-2 and 4-9.
  sequence = [frames.Frame(i, {}) if i in readable else None for i in range(10)]
  got = [[f.index for f in w] for w in clips.windows(sequence, clip_length)]
  half = clip_length // 2
  expected = []
  for m in readable:
    lo, hi = (0, 2) if m < 3 else (4, 9)
    expected.append(list(np.clip(np.arange(m - half, m + half + 1), lo, hi)))
  assert got == expected


def test_windows_reject_even_clip_length():
  with pytest.raises(ValueError, match="clip_length must be odd"):
    list(clips.windows([frames.Frame(0, {})], 4))


def test_configs_at_each_clip_length():
  names = {c.name: c.clip_length for c in synthetic_blur.SyntheticBlur.BUILDER_CONFIGS}
  assert names == {"tiny": 3, "tiny_t7": 7, "train": 3, "train_t7": 7, "study": 3,
                   "study_t7": 7, "study_mixed": 3, "study_mixed_t7": 7, "study_wide": 3,
                   "study_wide_t7": 7}


def test_test_split_can_move_faster_than_training():
  study = synthetic_blur.SyntheticConfig(name="x", max_speed=8.0, test_max_speed=14.0)
  assert (study.speed("train"), study.speed("test")) == (8.0, 14.0)
  same = synthetic_blur.SyntheticConfig(name="y", max_speed=8.0)
  assert (same.speed("train"), same.speed("test")) == (8.0, 8.0)


# -- GoPro ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
  root = tmp_path_factory.mktemp("gopro")
  tree = _write_gopro(root / "manual", {"train": [4, 2], "test": [3]})
  return root, tree


def test_gopro_clips_follow_the_files(gopro):
  root, tree = gopro
  builder = _build(root, "gopro", "blur", root / "manual")
  assert {s: i.num_examples for s, i in builder.info.splits.items()} == {"train": 6, "test": 3}
  train = builder.as_data_source(split="train")
  first = train[0]
  assert first["sequence"] == b"GOPR0305_11_00" and first["frame"] == 0
  _assert_clip(first, "blurry", tree["GOPR0305_11_00"]["blur"], [0, 0, 1])
  _assert_clip(first, "sharp", tree["GOPR0305_11_00"]["sharp"], [0, 0, 1])
  last = train[3]
  assert last["frame"] == 3
  _assert_clip(last, "blurry", tree["GOPR0305_11_00"]["blur"], [2, 3, 3])
  assert set(first) == {"blurry", "sharp", "sequence", "frame"}
  assert _frames(first, "blurry").shape == (3, *SIZE, 3)


def test_gopro_blur_gamma_t7_reads_its_folder(gopro):
  root, tree = gopro
  builder = _build(root, "gopro", "blur_gamma_t7", root / "manual")
  example = builder.as_data_source(split="test")[1]
  _assert_clip(example, "blurry", tree["GOPR0304_11_00"]["blur_gamma"], [0, 0, 0, 1, 2, 2, 2])
  _assert_clip(example, "sharp", tree["GOPR0304_11_00"]["sharp"], [0, 0, 0, 1, 2, 2, 2])


# -- DVD ------------------------------------------------------------------------------------------


def test_dvd_protocol_frames_are_matlab_linspace_minus_one():
  # floor(linspace(2, 97, 30)) = 2, 5, 8, 11, ..., 97 (1-based).
  assert dvd.PROTOCOL_FRAMES[:4] == (1, 4, 7, 10)
  assert dvd.PROTOCOL_FRAMES[-1] == 96 and len(set(dvd.PROTOCOL_FRAMES)) == 30


def test_dvd_splits_protocol_and_jpeg_passthrough(tmp_path):
  root = tmp_path / "manual" / "quantitative_datasets"
  videos = {"IMG_0030": 97, "IMG_9000": 3, "IMG_9001": 2}  # One test video, two training ones.
  tree = {name: {folder: _write_frames(root / name / folder, n, 2 * v + f, ext="jpg", first=0,
                                       digits=5)
                 for f, folder in enumerate(("input", "GT"))}
          for v, (name, n) in enumerate(videos.items())}
  with pytest.warns(UserWarning, match="test videos missing"):
    builder = _build(tmp_path, "dvd", "default_t7", tmp_path / "manual")
  splits = {s: i.num_examples for s, i in builder.info.splits.items()}
  assert splits == {"train": 5, "test": 97, "test30": 30}
  test30 = builder.as_data_source(split="test30")
  assert [test30[i]["frame"] for i in range(30)] == list(dvd.PROTOCOL_FRAMES)
  _assert_clip(test30[0], "blurry", tree["IMG_0030"]["input"], [0, 0, 0, 1, 2, 3, 4])
  train = builder.as_data_source(split="train")
  assert [train[i]["sequence"] for i in range(5)] == [b"IMG_9000"] * 3 + [b"IMG_9001"] * 2
  # JPEG files are stored as they are: decoding gives the very pixels of the file.
  _assert_clip(train[4], "sharp", tree["IMG_9001"]["GT"], [0, 0, 0, 1, 1, 1, 1])


# -- Unlabeled videos -----------------------------------------------------------------------------


def _write_videos(root):
  root.mkdir(parents=True)
  video = np.random.default_rng(0).integers(0, 256, (5, *SIZE, 3), dtype=np.uint8)
  video = np.repeat(np.repeat(video[:, ::8, ::8], 8, axis=1), 8, axis=2)  # Blocks survive H.264.
  iio.imwrite(root / "clip.mp4", video, fps=10)
  folder = _write_frames(root / "frames", 3, 1)
  dvd_style = _write_frames(root / "IMG_0001" / "input", 2, 2, ext="jpg")
  (root / "notes.txt").write_text("not a video")
  return video, folder, dvd_style


def test_blurry_video_reads_videos_and_frame_folders(tmp_path):
  video, folder, dvd_style = _write_videos(tmp_path / "manual")
  builder = _build(tmp_path, "blurry_video", "default", tmp_path / "manual")
  data = builder.as_data_source(split="train")
  examples = [data[i] for i in range(len(data))]
  assert [(e["sequence"], e["frame"]) for e in examples] == (
      [(b"IMG_0001", i) for i in range(2)] + [(b"clip", i) for i in range(5)]
      + [(b"frames", i) for i in range(3)])
  assert set(examples[0]) == {"blurry", "sequence", "frame"}  # Unlabeled: no sharp frames.
  _assert_clip(examples[0], "blurry", dvd_style, [0, 0, 1])
  _assert_clip(examples[9], "blurry", folder, [1, 2, 2])
  decoded = _frames(examples[4], "blurry").astype(float)  # clip.mp4, frame 2 (lossy video).
  assert np.mean(np.abs(decoded - video[1:4])) < 8.0


def test_prepare_command_line(tmp_path):
  _write_videos(tmp_path / "manual")
  data_dir = tmp_path / "tfds"
  command = [sys.executable, "-m", "reblur_jax.data.prepare", "blurry_video",
             f"--manual_dir={tmp_path / 'manual'}", f"--data_dir={data_dir}", "--config=default_t7"]
  done = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "blurry_video/default_t7/1.0.0 ready" in done.stdout.splitlines()[-1]
  assert "train: 10 clips" in done.stdout
  assert "Generating blurry_video/default_t7" in done.stderr
  assert "Downloading" not in done.stdout + done.stderr
  assert (data_dir / "blurry_video" / "default_t7" / "1.0.0" / "dataset_info.json").exists()
  missing = subprocess.run(command[:4] + [f"--data_dir={data_dir}"], capture_output=True,
                           text=True, timeout=300)
  assert missing.returncode != 0 and "error: Manual directory" in missing.stderr


# -- Bad inputs -----------------------------------------------------------------------------------


def test_missing_manual_dir_names_path_and_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist") as error:
    _build(tmp_path, "gopro", "blur", tmp_path / "nowhere")
  assert str(tmp_path / "nowhere") in str(error.value)
  assert "train/<SEQ>/blur/NNNNNN.png" in str(error.value)


@pytest.mark.parametrize("damage, error, message", [
    ("no_test_split", FileNotFoundError, "Expected a directory at .*GOPRO_Large/test"),
    ("no_sharp", FileNotFoundError, "Expected a directory at .*GOPR0304_11_00/sharp"),
    ("renamed_frame", ValueError, "hold different file names"),
    ("empty_test_split", FileNotFoundError, "No sequence folders in .*GOPRO_Large/test"),
])
def test_gopro_bad_layouts(tmp_path, damage, error, message):
  _write_gopro(tmp_path / "manual", {"train": [2], "test": [2]})
  large = tmp_path / "manual" / "GOPRO_Large"
  sequence = large / "test" / "GOPR0304_11_00"
  if damage == "no_test_split":
    os.rename(large / "test", large / "elsewhere")
  elif damage == "no_sharp":
    os.rename(sequence / "sharp", sequence / "sharpened")
  elif damage == "renamed_frame":
    os.rename(sequence / "sharp" / "000047.png", sequence / "sharp" / "000001.png")
  else:
    os.rename(sequence, large / "GOPR0304_11_00")
  with pytest.raises(error, match=message) as raised:
    _build(tmp_path, "gopro", "blur", tmp_path / "manual")
  assert "GOPRO_Large" in str(raised.value)


def _truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def test_corrupt_frame_fails_naming_its_path(tmp_path):
  tree = _write_gopro(tmp_path / "manual", {"train": [4], "test": [2]})
  bad = tmp_path / "manual" / "GOPRO_Large" / "train" / "GOPR0305_11_00" / "sharp" / "000049.png"
  _truncate(bad)
  with pytest.raises(frames.CorruptFrameError, match=f"{re.escape(str(bad))}.*on_corrupt=skip"):
    _build(tmp_path, "gopro", "blur", tmp_path / "manual")
  with pytest.warns(UserWarning, match=f"Skipping: Cannot decode image {re.escape(str(bad))}"):
    builder = _build(tmp_path, "gopro", "blur", tmp_path / "manual", on_corrupt="skip",
                     overwrite=True)
  train = builder.as_data_source(split="train")
  # Frame 2 is gone (its pair too); the sequence is cut there and each part padded.
  assert [train[i]["frame"] for i in range(len(train))] == [0, 1, 3]
  _assert_clip(train[1], "blurry", tree["GOPR0305_11_00"]["blur"], [0, 1, 1])
  _assert_clip(train[2], "sharp", tree["GOPR0305_11_00"]["sharp"], [3, 3, 3])


def test_split_with_only_corrupt_frames_is_an_error(tmp_path):
  _write_gopro(tmp_path / "manual", {"train": [2], "test": [1]})
  _truncate(tmp_path / "manual" / "GOPRO_Large" / "test" / "GOPR0304_11_00" / "blur" / "000047.png")
  with pytest.warns(UserWarning, match="Skipping"), \
       pytest.raises(ValueError, match="'test'.*no clips"):
    _build(tmp_path, "gopro", "blur", tmp_path / "manual", on_corrupt="skip")


def test_frames_of_different_sizes_name_the_sequence(tmp_path):
  root = tmp_path / "manual"
  _write_frames(root / "shaky", 3, 0)
  _write_frames(root / "shaky", 1, 1, size=(32, 40), first=4)
  with pytest.raises(ValueError, match="Sequence 'shaky': frame .*000004.png is 32x40"):
    _build(tmp_path, "blurry_video", "default", root)


def test_corrupt_video_is_reported(tmp_path):
  root = tmp_path / "manual"
  root.mkdir()
  (root / "broken.mp4").write_bytes(b"\x00" * 1000)
  _write_frames(root / "good", 2, 0)
  with pytest.raises(frames.CorruptFrameError, match="Cannot decode video .*broken.mp4"):
    _build(tmp_path, "blurry_video", "default", root)


def test_unknown_name_and_config(tmp_path):
  with pytest.raises(ValueError, match="Unknown dataset 'reds'"):
    prepare.prepare("reds", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="no config 'huge'.*'tiny'"):
    prepare.prepare("synthetic_blur", config="huge", data_dir=str(tmp_path))


# -- Synthetic ------------------------------------------------------------------------------------


def test_synthetic_tiny_matches_the_generator(tmp_path):
  builder = _build(tmp_path, "synthetic_blur", None)  # The default config: tiny.
  config = builder.builder_config
  assert config.name == "tiny"
  splits = {s: i.num_examples for s, i in builder.info.splits.items()}
  assert splits == {"train": config.train_sequences * config.num_frames,
                    "test": config.test_sequences * config.num_frames}
  test = builder.as_data_source(split="test")
  example = test[config.num_frames + 1]  # Second test sequence, frame 1.
  seed = synthetic_blur.TEST_SEED_OFFSET + 1
  assert example["sequence"] == f"test_{seed}".encode() and example["frame"] == 1
  video = synthetic.render_sequence(seed, split="test", num_frames=config.num_frames,
                                    height=config.height, width=config.width)
  assert example["tau"] == pytest.approx(video["tau"])
  for key in ("blurry", "sharp"):
    _assert_clip(example, key, video[key], [0, 1, 2])
  for key in ("flow_next", "flow_prev"):
    assert example[key].dtype == np.float32 and example[key].shape == (3, *video[key].shape[1:])
    np.testing.assert_allclose(example[key], video[key][:3], atol=1 / 512)
  # `render` is how the builder renders, and what experiments re-render with other settings.
  again = synthetic_blur.render(config, "test", seed)
  np.testing.assert_array_equal(again["blurry"], video["blurry"])
  linear = synthetic_blur.render(config, "test", seed, linear_light=True)
  np.testing.assert_array_equal(linear["sharp"], video["sharp"])
  assert not np.array_equal(linear["blurry"], video["blurry"])


def test_broader_training_blur_changes_only_the_training_split():
  plain = synthetic_blur.SyntheticConfig(name="p", height=32, width=32, num_frames=3,
                                         max_speed=10.0)
  broad = synthetic_blur.SyntheticConfig(name="b", height=32, width=32, num_frames=3,
                                         max_speed=10.0, train_speed_scale=(0.0, 0.05),
                                         train_linear_light_share=1.0)
  seed = synthetic_blur.TEST_SEED_OFFSET
  np.testing.assert_array_equal(synthetic_blur.render(broad, "test", seed)["blurry"],
                                synthetic_blur.render(plain, "test", seed)["blurry"])
  slow, fast = synthetic_blur.render(broad, "train", 0), synthetic_blur.render(plain, "train", 0)
  speed = lambda video: np.abs(video["flow_next"]).max()  # noqa: E731
  assert speed(slow) < 0.1 * speed(fast)
  linear = synthetic_blur.render(broad, "train", 0, linear_light=False)
  assert not np.array_equal(slow["blurry"], linear["blurry"])  # Averaged in linear light.
  assert synthetic_blur.builder_config("study_mixed").train_linear_light_share == 0.5
  # `study_wide` trains on the test split's motion range; its validation and test are `study`'s.
  wide, study = synthetic_blur.builder_config("study_wide"), synthetic_blur.builder_config("study")
  assert wide.speed("train") == wide.speed("test") == study.speed("test") == 18.0
