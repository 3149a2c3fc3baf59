"""`python -m reblur_jax.deblur` on a frame folder and a video file, with and without test-time
adaptation, and its errors for bad input. Uses the tiny run of conftest.py."""

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import tracemalloc

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from reblur_jax import checkpoint
from reblur_jax import deblur
from reblur_jax import disk
from reblur_jax.data import synthetic
from reblur_jax.data.builders import clips as clips_lib
from reblur_jax.data.builders import frames as frames_lib
from reblur_jax.evaluation import adapt
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.evaluation import video
from reblur_jax.training import losses

from conftest import subprocess_env

NUM_FRAMES = 6
# imageio runs ffmpeg in a subprocess, which JAX's fork warning cannot tell from a real fork.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
  """A folder of 45x61 frames (sides not multiples of DVD's 8) and a 44x60 video file."""
  root = tmp_path_factory.mktemp("inputs")
  frames = synthetic.render_sequence(5, split="test", num_frames=NUM_FRAMES, height=45,
                                     width=61)["blurry"]
  (root / "frames").mkdir()
  for i, frame in enumerate(frames):
    iio.imwrite(root / "frames" / f"blurry_{i:02d}.png", frame)
  iio.imwrite(root / "clip.mp4", frames[:, :44, :60], plugin="FFMPEG", fps=12, codec="libx264",
              macro_block_size=1)
  return {"folder": str(root / "frames"), "frames": frames, "video": str(root / "clip.mp4"),
          "video_frames": iio.imread(root / "clip.mp4", plugin="FFMPEG")}


@pytest.fixture(scope="module")
def network(tiny_run):
  restored = checkpoint.restore_run(tiny_run.workdir)
  module = networks.create_deblur(restored.config)
  return module, restored, jax.jit(lambda v, x: module.apply(v, x, train=False))


def _expected(network, frames, variables=None):
  """Each frame restored from its 5-frame window, the ends replicate-padded; uint8."""
  module, restored, apply = network
  variables = variables or restored.variables("deblur")
  out = []
  for i in range(len(frames)):
    window = frames[np.clip(np.arange(i - 2, i + 3), 0, len(frames) - 1)] / np.float32(255)
    out.append(np.asarray(apply(variables, window[None].astype(np.float32)))[0])
  return np.round(np.clip(np.stack(out), 0, 1) * 255).astype(np.uint8)


def _read_pngs(paths):
  return np.stack([iio.imread(p) for p in paths])


def _assert_frames_close(actual, expected):
  # One 8-bit level: jit of a different batch layout may round differently.
  assert actual.shape == expected.shape
  assert np.abs(actual.astype(int) - expected).max() <= 1


def test_clips_are_the_datasets_replicate_padded_windows():
  frames = np.arange(6)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
  ours = [video.Clips(frames, 7)[i]["blurry"][:, 0, 0, 0].tolist() for i in range(6)]
  source = [frames_lib.Frame(i, {"blurry": f}) for i, f in enumerate(frames)]
  theirs = [[f.index for f in w] for w in clips_lib.windows(source, 7)]
  assert ours == theirs and ours[0] == [0, 0, 0, 0, 1, 2, 3]


def test_a_frame_folder_is_deblurred_at_its_own_size(tiny_run, inputs, network, tmp_path):
  paths = deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path))
  assert [os.path.basename(p) for p in paths["frames"]] == [
      f"blurry_{i:02d}.png" for i in range(NUM_FRAMES)]
  assert "video" not in paths
  _assert_frames_close(_read_pngs(paths["frames"]), _expected(network, inputs["frames"]))


def test_a_video_file_gives_frames_and_a_video(tiny_run, inputs, network, tmp_path):
  paths = deblur.deblur_video(tiny_run.workdir, inputs["video"], str(tmp_path))
  restored = _read_pngs(paths["frames"])
  _assert_frames_close(restored, _expected(network, inputs["video_frames"]))
  assert paths["video"] == [str(tmp_path / "clip_deblurred.mp4")]
  written = iio.imread(paths["video"][0], plugin="FFMPEG")
  assert written.shape == restored.shape  # Lossy, so only the size and length are exact.
  assert iio.immeta(paths["video"][0], plugin="FFMPEG")["fps"] == 12


def test_a_video_is_deblurred_after_adapting_to_it(tiny_run, inputs, network, tmp_path,
                                                   monkeypatch):
  _, restored, _ = network
  adapted, real_adapt = [], adapt.adapt  # What the command's adaptation returned.
  def spy(*args, **kwargs):
    adapted.append(real_adapt(*args, **kwargs))
    return adapted[-1]
  monkeypatch.setattr(adapt, "adapt", spy)
  step = os.path.join(tiny_run.workdir, "checkpoints", "2")  # One checkpoint, not the workdir.
  paths = deblur.deblur_video(step, inputs["video"], str(tmp_path), adapt_steps=2,
                              adapt_batch_size=2, adapt_learning_rate=1e-2, adapt_safe=False)

  (variables, history, decision, held_out), = adapted
  assert decision.adapted and decision.kept_step == 2 and not held_out
  assert paths["adaptation"] == ["Adaptation adapted: kept step 2 of 2 steps run (no safeguards)."]
  assert [h["step"] for h in history] == [1, 2]
  # Labeled clips of the run's own set are mixed in by default.
  assert all(np.isfinite(h["loss_reblur"]) and np.isfinite(h["loss_supervised"])
             for h in history)
  before = restored.variables("deblur")
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before["params"],
                         variables["params"])
  assert all(jax.tree.leaves(changed))
  # Fine-tuning keeps BatchNorm statistics frozen (config.train_mode is False).
  jax.tree.map(np.testing.assert_array_equal, before["batch_stats"], variables["batch_stats"])
  # The frames are those of the adapted network, not of the checkpoint's.
  frames = _read_pngs(paths["frames"])
  _assert_frames_close(frames, _expected(network, inputs["video_frames"], variables))
  assert np.abs(frames.astype(int) - _expected(network, inputs["video_frames"])).max() > 1
  assert os.path.exists(paths["video"][0])


def test_adapting_is_safe_by_default_and_says_what_it_decided(tiny_run, inputs, network,
                                                             tmp_path):
  paths = deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                              adapt_batch_size=2)
  line, = paths["adaptation"]
  assert line.startswith(("Adaptation declined: kept the starting weights",
                          "Adaptation adapted: kept step"))
  if "declined" in line:  # The frames are then exactly the checkpoint's.
    _assert_frames_close(_read_pngs(paths["frames"]), _expected(network, inputs["frames"]))


def test_adaptation_settings(network):
  _, restored, _ = network
  config = adapt.adaptation_config(restored.config, steps=5, frame_size=(45, 61))
  assert (config.unlabeled_fraction, config.num_train_steps, config.crop_size) == (1.0, 5, 32)
  assert config.learning_rate == adapt.LEARNING_RATE
  assert config.batch_size == restored.config.batch_size
  assert config.tau == restored.config.tau
  # Without a FlowNetS at hand (a supervised network's run has none), TV-L1 needs none.
  assert restored.config.flow_source == "flownets"
  assert adapt.default_flow_source(restored.config, flow_network_at_hand=True) == "flownets"
  assert adapt.default_flow_source(restored.config, flow_network_at_hand=False) == "tvl1"
  assert adapt.adaptation_config(restored.config, steps=5, frame_size=(45, 61),
                                 tau=0.25).tau == 0.25
  # The blur model in linear light reaches the losses (the run's config: encoded values).
  assert not losses.LossSettings.from_config(config).reblur_kwargs()["linear_light"]
  linear = adapt.adaptation_config(restored.config, steps=5, frame_size=(45, 61),
                                   linear_light=True)
  assert losses.LossSettings.from_config(linear).reblur_kwargs()["linear_light"]
  # Even a supervised run's checkpoint (BatchNorm trained) adapts with it frozen, at a constant rate.
  supervised = restored.config.copy_and_resolve_references()
  supervised.train_mode, supervised.lr_decay_epochs = True, (30, 50, 100)
  config = adapt.adaptation_config(supervised, steps=5, frame_size=(45, 61))
  assert config.train_mode is False and tuple(config.lr_decay_epochs) == ()
  # Labeled clips mixed in: half of each batch, as the reblur runs do.
  config = adapt.adaptation_config(restored.config, steps=5, frame_size=(24, 61),
                                   labeled_dataset="gopro/blur_t7", data_dir="/data")
  assert (config.labeled_dataset, config.data_dir) == ("gopro/blur_t7", "/data")
  assert config.unlabeled_fraction == 0.5 and config.crop_size == 24
  assert config.alpha == adapt.ALPHA
  # By default the labeled set the network was trained on; none for a run on video alone.
  assert adapt.labeled_default(supervised) == supervised.labeled_dataset
  supervised.unlabeled_fraction = 1.0
  assert adapt.labeled_default(supervised) is None
  with pytest.raises(ValueError, match="adapt_steps must be >= 1"):
    adapt.adaptation_config(restored.config, steps=-1, frame_size=(45, 61))


def _without_flow(restored):
  """The restored run as if trained without unlabeled clips (no FlowNetS)."""
  params = {"deblur": restored.state["params"]["deblur"]}
  return networks.Restored(dataclasses.replace(restored, state={**restored.state,
                                                                "params": params}))


def test_adapting_with_flownets_but_no_flow_network_asks_for_one(tiny_run, inputs, network,
                                                                 tmp_path, monkeypatch):
  _, restored, _ = network
  monkeypatch.setattr(networks, "restore", lambda path: _without_flow(restored))
  with pytest.raises(FileNotFoundError, match="--flow_checkpoint"):
    deblur.deblur_video(tiny_run.workdir, inputs["video"], str(tmp_path), adapt_steps=1,
                        adapt_flows="flownets")
  with pytest.raises(ValueError, match="holds no FlowNetS"):
    _without_flow(restored).reblur(inputs["frames"])


def test_adapting_with_tvl1_flows_needs_no_flow_network(tiny_run, inputs, network, tmp_path,
                                                        monkeypatch):
  _, restored, _ = network
  monkeypatch.setattr(networks, "restore", lambda path: _without_flow(restored))
  adapted, real_adapt = [], adapt.adapt
  monkeypatch.setattr(adapt, "adapt", lambda *a, **k: adapted.append(real_adapt(*a, **k))
                      or adapted[-1])
  # No FlowNetS at hand and no --adapt_flows: TV-L1.
  paths = deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                              adapt_batch_size=2, adapt_safeguards={"min_reblur_psnr": 0.0},
                              adapt_labeled=False)
  (_, history, decision, held_out), = adapted
  # The reblur loss ran on fixed flows, and the held-out frames were measured with them; the
  # video alone was adapted to.
  assert [h["step"] for h in history] == [1, 2] and history[-1]["loss_reblur"] > 0
  assert "loss_supervised" not in history[-1]
  assert held_out[0]["step"] == 0 and held_out[0]["loss_reblur"] > 0
  assert paths["adaptation"] == [f"Adaptation {decision.describe()}."]
  with pytest.raises(ValueError, match="--adapt_flows=raft: expected one of"):
    deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                        adapt_flows="raft")
  with pytest.raises(ValueError, match="with --noadapt_labeled: drop one of the two"):
    deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                        adapt_labeled=False, labeled_dataset="synthetic_blur/tiny_t7")
  with pytest.raises(ValueError, match=r"gopro/blur_t7' is not prepared .* point --data_dir at "
                     r"where it is\. Or pass --noadapt_labeled"):
    deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                        labeled_dataset="gopro/blur_t7")
  with pytest.raises(ValueError, match=r"--adapt_tau=1.5: expected an exposure in \(0, 1\]"):
    deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), adapt_steps=2,
                        adapt_tau=1.5)


def test_flow_network_from_another_run_or_a_variables_directory(tiny_run, network):
  _, restored, _ = network
  expected = restored.variables("flow")
  without = _without_flow(restored)
  without.config.flow_model_kwargs = {"width": 1.0}
  # A training run brings its own FlowNetS width.
  without.use_flow(tiny_run.workdir)
  assert without.config.flow_model_kwargs.width == restored.config.flow_model_kwargs.width
  jax.tree.map(np.testing.assert_array_equal, without.flow_variables, expected)
  without = _without_flow(restored)
  without.use_flow(os.path.join(tiny_run.workdir, "variables", "flow"))
  jax.tree.map(np.testing.assert_array_equal, without.flow_variables, expected)
  with pytest.raises(checkpoint.ModelMismatchError, match=r"baseline does not hold a flownets\("):
    without.use_flow(tiny_run.baseline)


# ----------------------------------------------------------------------------- the command


def _python(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                        capture_output=True, text=True, timeout=300)


def test_the_command_and_what_it_runs_import_no_tensorflow():
  """TensorFlow (seconds to import) serves summary writers and dataset preparation only."""
  result = _python("import sys\n"
                   "import reblur_jax.deblur\n"
                   "from reblur_jax.evaluation import adapt, inference, networks, video\n"
                   "print('tensorflow' in sys.modules)\n")
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["False"]


def test_help_shows_an_example_before_jax_loads():
  result = _python("import runpy, sys\n"
                   "sys.argv = ['deblur', '--help']\n"
                   "try:\n"
                   "  runpy.run_module('reblur_jax.deblur', run_name='__main__', alter_sys=True)\n"
                   "except SystemExit:\n"
                   "  pass\n"
                   "print('jax imported:', 'jax' in sys.modules)\n")
  assert "  python -m reblur_jax.deblur --checkpoint=runs/dvd_reblur --input=" in result.stdout
  assert result.stdout.splitlines()[-1] == "jax imported: False"


def test_the_console_holds_the_commands_own_lines(tiny_run, inputs, tmp_path):
  """No framework banner or backend probing (none of the switches the tests set elsewhere); the
  last line says where the frames went."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_PLATFORMS", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
  result = subprocess.run(
      [sys.executable, "-m", "reblur_jax.deblur", f"--checkpoint={tiny_run.workdir}",
       f"--input={inputs['folder']}", f"--output={tmp_path}"],
      env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[-1] == f"Wrote {NUM_FRAMES} frames to {tmp_path}."
  for noise in ("oneDNN", "TensorFlow", "backend 'tpu'", "orbax", "read only"):
    assert noise not in result.stderr
  info = [line for line in result.stderr.splitlines() if line[:1] == "I" and line[1:5].isdigit()]
  assert info and all(" deblur.py:" in line for line in info)
  assert len(os.listdir(tmp_path)) == NUM_FRAMES


# ----------------------------------------------------------------------------- bad input


def test_missing_input(tiny_run, tmp_path):
  with pytest.raises(FileNotFoundError, match="--input: nothing at"):
    deblur.deblur_video(tiny_run.workdir, str(tmp_path / "nope.mp4"), str(tmp_path / "out"))


def test_folder_without_images(tiny_run, tmp_path):
  with pytest.raises(FileNotFoundError, match="No image files"):
    deblur.deblur_video(tiny_run.workdir, str(tmp_path), str(tmp_path / "out"))


def test_corrupt_frame_is_named(tiny_run, inputs, tmp_path):
  folder = tmp_path / "frames"
  shutil.copytree(inputs["folder"], folder)
  (folder / "blurry_03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  with pytest.raises(frames_lib.CorruptFrameError, match="blurry_03.png"):
    deblur.deblur_video(tiny_run.workdir, str(folder), str(tmp_path / "out"))


def test_not_a_video_file(tiny_run, tmp_path):
  (tmp_path / "notes.txt").write_text("not a video")
  with pytest.raises(ValueError, match="is not a video file"):
    deblur.deblur_video(tiny_run.workdir, str(tmp_path / "notes.txt"), str(tmp_path / "out"))


def test_corrupt_video(tiny_run, tmp_path):
  (tmp_path / "broken.mp4").write_bytes(bytes(range(256)) * 8)
  with pytest.raises(frames_lib.CorruptFrameError, match="broken.mp4"):
    deblur.deblur_video(tiny_run.workdir, str(tmp_path / "broken.mp4"), str(tmp_path / "out"))


def test_output_files_are_not_overwritten_unless_asked(tiny_run, inputs, tmp_path):
  (tmp_path / "blurry_04.png").write_bytes(b"mine")
  result = subprocess.run(
      [sys.executable, "-m", "reblur_jax.deblur", f"--checkpoint={tiny_run.workdir}",
       f"--input={inputs['folder']}", f"--output={tmp_path}"],
      env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode != 0
  assert "error: --output:" in result.stderr and "--overwrite" in result.stderr
  assert (tmp_path / "blurry_04.png").read_bytes() == b"mine"
  deblur.deblur_video(tiny_run.workdir, inputs["folder"], str(tmp_path), overwrite=True)
  assert iio.imread(tmp_path / "blurry_04.png").shape == (45, 61, 3)


def test_checkpoint_of_another_model(tiny_run, inputs, tmp_path):
  """A run whose config names DeblurGAN but whose variables are DVD's."""
  step = tmp_path / "run" / "checkpoints" / "2"
  shutil.copytree(os.path.join(tiny_run.workdir, "checkpoints", "2"), step)
  with open(step / "config" / "metadata") as f:
    config = json.load(f)
  config.update(model="deblurgan", model_kwargs={"width": 0.0625, "dropout_rate": 0.0})
  with open(step / "config" / "metadata", "w") as f:
    json.dump(config, f)
  with pytest.raises(checkpoint.ModelMismatchError,
                     match=r"does not hold a deblurgan\(dropout_rate=0.0, width=0.0625\)"):
    deblur.deblur_video(str(tmp_path / "run"), inputs["folder"], str(tmp_path / "out"))


def test_not_a_checkpoint(inputs, tmp_path):
  with pytest.raises(FileNotFoundError, match="No checkpoint at"):
    deblur.deblur_video(str(tmp_path / "nowhere"), inputs["folder"], str(tmp_path / "out"))


def test_a_relative_workdir_restores_like_an_absolute_one(tiny_run, network, monkeypatch):
  _, restored, _ = network
  monkeypatch.chdir(os.path.dirname(tiny_run.workdir))
  relative = checkpoint.restore_run(os.path.basename(tiny_run.workdir))
  assert relative.step == restored.step
  jax.tree.map(np.testing.assert_array_equal, relative.state, restored.state)


def test_windows_of_a_stream_are_the_clips():
  frames = np.arange(7)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
  for size in (1, 5, 9):
    streamed = list(video.windows(iter(frames), size))
    assert len(streamed) == len(frames)
    for index, window in enumerate(streamed):
      np.testing.assert_array_equal(window, video.Clips(frames, size)[index]["blurry"])


def test_a_cut_between_shots_ends_clips_like_the_ends_of_the_video():
  rng = np.random.default_rng(0)
  dark, bright = rng.integers(0, 60, (32, 32, 3)), rng.integers(180, 256, (32, 32, 3))
  frames = np.stack([np.roll(dark, i, axis=1) for i in range(4)]  # Shot 1: frames 0-3.
                    + [np.roll(bright, i, axis=1) for i in range(3)]).astype(np.uint8)
  np.testing.assert_array_equal(video.shots(frames), [0, 0, 0, 0, 1, 1, 1])
  np.testing.assert_array_equal(video.shots(frames / np.float32(255)), [0, 0, 0, 0, 1, 1, 1])
  expected = [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3],
              [4, 4, 4, 5, 6], [4, 4, 5, 6, 6], [4, 5, 6, 6, 6]]
  for index, (clip, streamed) in enumerate(zip(
      (video.Clips(frames, 5)[i]["blurry"] for i in range(len(frames))),
      video.windows(iter(frames), 5), strict=True)):
    np.testing.assert_array_equal(clip, frames[expected[index]])
    np.testing.assert_array_equal(streamed, clip)


def test_motion_within_a_shot_is_not_a_cut():
  scene = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
  pan = np.stack([scene[:, shift:shift + 64] for shift in range(0, 32, 8)])
  assert video.shots(pan).tolist() == [0, 0, 0, 0]


def test_prefetch_keeps_order_and_raises_where_the_error_was():
  def items():
    yield from range(5)
    raise ValueError("frame 5 is corrupt")
  got = []
  with pytest.raises(ValueError, match="frame 5"):
    for item in video.prefetch(items(), size=2):
      got.append(item)
  assert got == list(range(5))


def _middle_frame(windows):
  return windows[:, windows.shape[1] // 2]


def _peak_bytes(folder, output):
  """Peak Python/NumPy memory of reading, 'deblurring' (the middle frame) and writing."""
  source = video.open_source(folder)
  tracemalloc.start()
  try:
    restored = inference.deblur_frames(_middle_frame, (f for _, f in video.frames(source)), 5,
                                    tile=0)
    names = (os.path.splitext(os.path.basename(p))[0] for p in source.image_paths)
    video.write(output, zip(names, restored))
    return tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()


def test_a_long_video_is_streamed_through_memory_that_does_not_grow(tmp_path):
  frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)
  peaks = {}
  for count in (10, 80):
    folder = tmp_path / f"in{count}"
    folder.mkdir()
    for i in range(count):
      iio.imwrite(folder / f"{i:03d}.png", np.roll(frame, i, axis=1))
    peaks[count] = _peak_bytes(str(folder), str(tmp_path / f"out{count}"))
    restored = iio.imread(tmp_path / f"out{count}" / f"{count - 1:03d}.png")
    np.testing.assert_array_equal(restored, np.roll(frame, count - 1, axis=1))
  # 70 more frames would add 70 x 27 kB (twice: input and output) if any stage kept them all.
  assert peaks[80] - peaks[10] < 5 * frame.nbytes, peaks


def test_a_full_disk_while_writing_frames_keeps_the_complete_ones(tmp_path, monkeypatch):
  frames = [(f"f{i}", np.full((8, 8, 3), i, np.uint8)) for i in range(6)]
  real_write, calls = iio.imwrite, []
  def full_after_three(path, image, **kwargs):
    calls.append(path)
    if len(calls) > 3:
      with open(path, "wb") as f:
        f.write(b"\x89PNG partial")  # Part of the file made it to disk.
      raise OSError(errno.ENOSPC, "No space left on device", str(path))
    return real_write(path, image, **kwargs)
  monkeypatch.setattr(video.iio, "imwrite", full_after_three)
  with pytest.raises(disk.DiskFullError, match=r"no space left on device writing to .*: "
                     r"expected room .*; 3 complete frames were written; free space and rerun"):
    video.write(str(tmp_path), iter(frames))
  assert sorted(os.listdir(tmp_path)) == ["f0.png", "f1.png", "f2.png"]  # No partial file.
  for name, frame in frames[:3]:
    np.testing.assert_array_equal(iio.imread(tmp_path / f"{name}.png"), frame)


def test_restore_deblurs_estimates_flows_and_reblurs_a_video(tiny_run, inputs, network):
  module, restored, apply = network
  run = networks.restore(tiny_run.workdir)
  assert (run.step, run.networks) == (2, ["deblur", "flow"])
  assert run.model == "dvd(frames=5, width=0.0625)"
  frames = inputs["frames"]
  _assert_frames_close(run.deblur(frames), _expected(network, frames))
  flow_prev, flow_next = run.flows(frames)
  assert flow_prev.shape == flow_next.shape == (*frames.shape[:3], 2)
  flow = networks.create_flow(restored.config)
  t = 2
  direct = flow.apply(restored.variables("flow"), frames[t + 1][None] / np.float32(255),
                      frames[t][None] / np.float32(255))
  np.testing.assert_allclose(flow_next[t], direct[0], atol=1e-4)
  # Zero motion blurs nothing: the reblurred frames are the restored ones, unrounded.
  still = np.zeros_like(flow_prev)
  reblurred = run.reblur(frames, flows=(still, still))
  _assert_frames_close(np.round(np.clip(reblurred, 0, 1) * 255).astype(np.uint8),
                       _expected(network, frames))
  moving = run.reblur(frames)
  assert moving.shape == frames.shape and np.abs(moving - reblurred).max() > 0
