"""evaluate.py on the tiny fine-tuned run (conftest.py): the report's numbers, grids,
TensorBoard, timing, errors."""

import dataclasses
import fcntl
import functools
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from reblur_jax import checkpoint
from reblur_jax import metrics
from reblur_jax import models
from reblur_jax.data import pipeline
from reblur_jax.evaluation import scoring
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.training import train
from reblur_jax.training import validation

from conftest import REPO, once_per_session, subprocess_env

DATASET = "synthetic_blur/tiny_t7"
TIMING = (48, 80)  # (H, W) of the timed frames: small, the tests only check that it is reported.


@pytest.fixture(scope="module")
def evaluation(tiny_run, tmp_path_factory):
  """`python evaluate.py` on the tiny run, its own config, every test clip, once per session.

  Returns `(report dict, the eval directory)`.
  """
  def evaluate_run(workdir):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "evaluate.py"), f"--workdir={workdir}",
         f"--checkpoint={tiny_run.workdir}", f"--timing_size={TIMING[1]}x{TIMING[0]}"],
        env=subprocess_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"## {DATASET}, split test" in result.stdout  # The table is printed too.
    report = os.path.join(workdir, "eval", "report.md")
    assert result.stdout.splitlines()[-1].startswith(f"Report in {report} ")
    assert "oneDNN" not in result.stderr  # TensorFlow writes the summaries, without its banner.

  directory = once_per_session(tmp_path_factory, "evaluation", evaluate_run) / "eval"
  with open(directory / "report.json") as f:
    return json.load(f), directory


def test_report_holds_the_scores_of_each_network_recomputed_here(tiny_run, evaluation):
  report, _ = evaluation
  restored = checkpoint.restore_run(tiny_run.workdir)
  module = models.create("dvd", **restored.config.model_kwargs)
  apply = jax.jit(functools.partial(module.apply, train=False))
  variables = {"finetuned": restored.variables("deblur"),
               "baseline": checkpoint.load_variables(tiny_run.baseline)}
  source = pipeline.data_source(DATASET, "test", tiny_run.data_dir)
  (entry,) = report["datasets"]
  assert (entry["name"], entry["split"], entry["frames"]) == (DATASET, "test", len(source))
  assert report["baseline"] == tiny_run.baseline and report["step"] == 2

  for index in (0, 11):  # The first frame of a sequence (replicate-padded window) and another.
    example = source[index]
    row = entry["per_frame"][index]
    assert (row["sequence"], row["frame"]) == (example["sequence"].decode(), example["frame"])
    blurry = np.stack(example["blurry"]).astype(np.float32) / 255
    sharp = np.stack(example["sharp"])[3].astype(np.float32) / 255
    windows = blurry[None, 1:6]  # DVD's 5 frames around the middle of the 7-frame clip.
    images = {"blurry": blurry[3]}
    images.update({c: metrics.quantize(apply(v, windows)[0])
                   for c, v in variables.items()})
    for column, image in images.items():
      assert row[column]["psnr"] == pytest.approx(float(metrics.psnr(image, sharp)), abs=1e-4)
      assert row[column]["ssim"] == pytest.approx(float(metrics.ssim(image, sharp)), abs=1e-4)
  # Two steps at lr 1e-3 moved the network: the columns differ.
  assert entry["mean"]["baseline"]["psnr"] != entry["mean"]["finetuned"]["psnr"]


def test_means_are_over_frames_and_sequences_and_match_the_markdown(evaluation):
  report, directory = evaluation
  (entry,) = report["datasets"]
  rows = entry["per_frame"]
  for column in ("blurry", "baseline", "finetuned"):
    for metric in ("psnr", "ssim"):
      values = [r[column][metric] for r in rows]
      assert entry["mean"][column][metric] == pytest.approx(np.mean(values), abs=1e-9)
      for sequence in entry["sequences"]:
        mine = [r[column][metric] for r in rows if r["sequence"] == sequence["name"]]
        assert sequence["frames"] == len(mine)
        assert sequence["mean"][column][metric] == pytest.approx(np.mean(mine), abs=1e-9)
  markdown = (directory / "report.md").read_text()
  mean = entry["mean"]
  assert (f"| **mean** | {entry['frames']} | {mean['blurry']['psnr']:.2f} / "
          f"{mean['blurry']['ssim']:.4f} | {mean['baseline']['psnr']:.2f} / "
          f"{mean['baseline']['ssim']:.4f} | {mean['finetuned']['psnr']:.2f} / "
          f"{mean['finetuned']['ssim']:.4f} |") in markdown
  assert all(f"| {s['name']} | {s['frames']} |" in markdown for s in entry["sequences"])


def test_time_per_frame_and_device_are_reported(evaluation):
  report, directory = evaluation
  assert report["time_per_frame_s"] > 0
  assert report["timing_size"] == list(TIMING) and report["timing_tile"] == 0
  assert report["device"].startswith("CPU")
  assert f"Time per frame at {TIMING[1]}x{TIMING[0]}:" in (directory / "report.md").read_text()


def test_grids_are_written_as_png_and_to_tensorboard(evaluation):
  _, directory = evaluation
  grids = sorted(n for n in os.listdir(directory) if n.startswith("grid_"))
  assert len(grids) == 2  # --num_grids default, spread over the set: first and last clip.
  grid = np.asarray(Image.open(directory / grids[0]))
  assert grid.shape[1] == 4 * 64 and grid.shape[0] > 2 * 64  # 4 panels over their crops.
  events = event_accumulator.EventAccumulator(str(directory), size_guidance={"tensors": 0})
  events.Reload()
  tags = set(events.Tags()["tensors"])
  assert f"{DATASET}:test/finetuned_psnr" in tags and f"{DATASET}:test/baseline_ssim" in tags
  assert sum(tag.startswith(f"{DATASET}:test/test_") for tag in tags) == 2  # The grid images.


def test_a_baseline_of_another_model_is_a_clear_error(tiny_run, tmp_path):
  config = checkpoint.restore_run(tiny_run.workdir).config
  deblurgan = models.create("deblurgan", width=1 / 16)
  clip = np.zeros((1, 1, 32, 32, 3), np.float32)
  shapes = jax.eval_shape(functools.partial(deblurgan.init, train=False), jax.random.key(0), clip)
  config.init_checkpoint = checkpoint.save_variables(
      tmp_path / "deblurgan", jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))
  with pytest.raises(checkpoint.ModelMismatchError,
                     match=r"deblurgan does not hold a dvd\(frames=5, width=0.0625\) network"):
    scoring.score_checkpoint(config, tmp_path, checkpoint_path=tiny_run.workdir, timing_size=None)


def test_a_config_of_another_model_is_a_clear_error(tiny_run, tmp_path):
  config = checkpoint.restore_run(tiny_run.workdir).config
  config.model, config.model_kwargs = "deblurgan", {"width": 1 / 16}
  with pytest.raises(checkpoint.ModelMismatchError, match=r"does not hold a deblurgan\(width="):
    scoring.score_checkpoint(config, tmp_path, checkpoint_path=tiny_run.workdir, timing_size=None)


def test_an_unprepared_data_set_says_how_to_prepare_it(tiny_run, tmp_path):
  with pytest.raises(validation.ConfigError, match="python -m reblur_jax.data.prepare gopro"):
    scoring.score_checkpoint(None, tmp_path, checkpoint_path=tiny_run.workdir,
                             datasets=["gopro/blur_t7:test"], data_dir=str(tmp_path),
                             timing_size=None)


def test_no_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="No training checkpoint"):
    scoring.score_checkpoint(None, tmp_path, timing_size=None)


def test_dataset_specs_take_the_default_split():
  assert scoring.parse_datasets(["dvd/default_t7:test30", "gopro/blur"], "test") == [
      ("dvd/default_t7", "test30"), ("gopro/blur", "test")]


# ----------------------------------------------------------------------------- frames too large


def _pointwise_with_memory_limit(windows):
  """A 'network' that runs out of device memory on tiles larger than 128 x 128."""
  if windows.shape[-3] * windows.shape[-2] > 128 * 128:
    raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 GiB.")
  return 0.5 * windows[:, windows.shape[1] // 2] + 0.25


def test_frames_that_do_not_fit_are_restored_in_tiles():
  windows = np.random.default_rng(0).random((1, 5, 300, 200, 3), np.float32)
  tile = inference.choose_tile(_pointwise_with_memory_limit, windows.shape)
  assert tile == 128
  np.testing.assert_allclose(
      inference.restore(_pointwise_with_memory_limit, windows, tile=tile),
      0.5 * windows[:, 2] + 0.25, atol=1e-6)
  assert inference.choose_tile(_pointwise_with_memory_limit, windows.shape, tile=0) == 0


def test_other_device_errors_are_not_mistaken_for_memory():
  def broken(windows):
    raise jax.errors.JaxRuntimeError("INTERNAL: something else")
  with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
    inference.choose_tile(broken, (1, 5, 300, 200, 3))


def test_train_evaluate_scores_a_run_s_networks_as_the_run_logged_them(tiny_run):
  # What experiments/reproduce.py reads for shipped networks: no training, the same eval step.
  config = checkpoint.restore_run(tiny_run.workdir).config
  config.init_checkpoint = os.path.join(tiny_run.workdir, train.VARIABLES_DIR, "deblur")
  config.flow_init_checkpoint = os.path.join(tiny_run.workdir, train.VARIABLES_DIR, "flow")
  events = event_accumulator.EventAccumulator(tiny_run.workdir, size_guidance={"tensors": 0})
  events.Reload()
  logged = {e.step: float(np.asarray(tensor_util.make_ndarray(e.tensor_proto)))
            for e in events.Tensors("eval/psnr")}
  assert train.evaluate(config)["psnr"] == pytest.approx(logged[max(logged)], abs=1e-3)
