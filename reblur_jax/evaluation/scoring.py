"""Scoring a checkpoint on labeled sets at native resolution, against its baseline and the input.

`score_checkpoint(config, workdir)` (what `evaluate.py` runs) restores a training checkpoint, and
the variables it was fine-tuned from (`config.init_checkpoint`, the "baseline"), restores every
clip of the configured evaluation sets with both, and writes to `<workdir>/eval/`:

* `report.md` and `report.json` (`report.py`): PSNR / SSIM of the blurry input, the baseline and
  the fine-tuned network per data set and per sequence, and the time per frame at 1280x720;
* `grid_<set>_<split>_<sequence>_<frame>.png`: blurry | baseline | fine-tuned | sharp over a
  zoomed crop (`grids.py`), for a few frames spread over each set;
* TensorBoard summaries of the same (means as scalars, grids as images) at the checkpoint's step.

Each clip is read from its TFDS data source in order; the network sees the window of its
`num_input_frames` frames centred on the clip's middle frame, which the data sets replicate-pad
at the ends of sequences (DVD: frames `[0, 0, 0, 1, 2]` for the first frame).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from absl import logging
from PIL import Image

from reblur_jax import checkpoint
from reblur_jax import metrics
from reblur_jax.data import pipeline
from reblur_jax.evaluation import grids
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.evaluation import report as report_lib
from reblur_jax.training import validation

if TYPE_CHECKING:
  from clu import metric_writers

EVAL_DIR = "eval"


@jax.jit
def scores(images: jax.Array, sharp: jax.Array) -> tuple[jax.Array, jax.Array]:
  """PSNR and SSIM of `[k, H, W, 3]` images, clamped and rounded to 8 bits, against `sharp`."""
  saved = metrics.quantize(images)
  sharp = jnp.broadcast_to(sharp, saved.shape)
  return metrics.psnr(saved, sharp), metrics.ssim(saved, sharp)


def parse_datasets(specs: Sequence[str], default_split: str) -> list[tuple[str, str]]:
  """`["dvd/default_t7:test30", "gopro/blur_t7"]` -> `[(name, split), ...]`, the split
  `default_split` where none is given."""
  pairs = []
  for spec in specs:
    name, _, split = spec.partition(":")
    if not name:
      raise ValueError(f"datasets: expected 'name[/config][:split]', got {spec!r}.")
    pairs.append((name, split or default_split))
  return pairs


def centred_window(example: dict, window: int) -> tuple[np.ndarray, np.ndarray]:
  """A labeled clip's `window` frames centred on its middle frame, `float32 [1, n, H, W, 3]`,
  and that frame's sharp version `[H, W, 3]`, both in [0, 1]: what each clip is scored on."""
  clip = pipeline.augment_clip(example, np.random.default_rng(0), keys=("blurry", "sharp"),
                               clip_length=window, flips=False)
  return clip["blurry"][None], clip["sharp"][window // 2]


def check_arguments(*, max_clips: int, tile: int | None, num_grids: int) -> None:
  """The command's numeric flags, before anything is read."""
  checks = [("--max_clips", max_clips, max_clips == -1 or max_clips >= 1,
             "a clip count >= 1, or -1 for all"),
            ("--tile", tile, tile is None or tile >= 0, "a tile side >= 0 (0: whole frames)"),
            ("--num_grids", num_grids, num_grids >= 0, "a count >= 0")]
  for flag, value, ok, expected in checks:
    if not ok:
      raise validation.ConfigError(f"{flag}={value}: expected {expected}; pass a value in range.")


def score_checkpoint(config: ml_collections.ConfigDict | None, workdir: str | os.PathLike, *,
             checkpoint_path: str | None = None, datasets: Sequence[str] | None = None,
             data_dir: str | None = None, max_clips: int = -1, tile: int | None = None,
             timing_size: tuple[int, int] | None = inference.PAPER_SIZE,
             num_grids: int = 2, grid_frames: Sequence[int] | None = None) -> dict:
  """Evaluates a checkpoint; writes and returns the report (module docstring).

  Args:
    config: the run's settings: `model`, `model_kwargs`, `init_checkpoint` (the baseline; ""
      for none), `eval_dataset`, `eval_split`, `data_dir`. None: the checkpoint's own config.
    workdir: the training workdir; reports go to `<workdir>/eval`.
    checkpoint_path: the checkpoint to score (a workdir or `<workdir>/checkpoints/<step>`); None:
      the newest in `workdir`.
    datasets: data sets as "name[/config][:split]" (split default: `config.eval_split`); None:
      `config.eval_dataset` alone.
    data_dir: where the data sets are prepared; None: `config.data_dir` (or TFDS's default).
    max_clips: score at most this many clips per data set (-1: all).
    tile: `inference.choose_tile`'s argument (None: whole frames unless memory requires tiles).
    timing_size: `(H, W)` of the timed frames; None skips timing.
    num_grids: comparison pictures per data set, of frames spread over it.
    grid_frames: which clips (indices into each data set) to picture instead.

  Raises:
    FileNotFoundError: no checkpoint.
    validation.ConfigError: a bad argument, a data set that is not prepared, a baseline that is
      missing or of another model (checked before any network runs).
    checkpoint.ModelMismatchError: the checkpoint holds another model than the config describes.
  """
  check_arguments(max_clips=max_clips, tile=tile, num_grids=num_grids)
  workdir = os.path.abspath(os.fspath(workdir))
  source = os.path.abspath(checkpoint_path) if checkpoint_path else workdir
  run = checkpoint.restore_run(source)
  config = run.config if config is None else config
  validation.check_fields(config)
  validation.check_init_checkpoints(config, fields=("init_checkpoint",))
  data_dir = data_dir or config.get("data_dir") or None
  datasets = parse_datasets(datasets or [config.eval_dataset], config.eval_split)
  for name, split in datasets:
    validation.check_dataset(name, split, data_dir, what="dataset",
                             data_dir_flag="--data_dir")
  module = networks.create_deblur(config)
  model = checkpoint.describe(config.model, config.model_kwargs)
  finetuned = run.variables("deblur")
  checkpoint.check_variables(module, finetuned, source=source, model=model)
  baseline = config.get("init_checkpoint") or None
  fns = {"finetuned": networks.deblur_fn(module, finetuned)}
  if baseline:
    fns = {"baseline": networks.deblur_fn(
        module, checkpoint.load_network(baseline, module=module, model=model)), **fns}

  directory = os.path.join(workdir, EVAL_DIR)
  os.makedirs(directory, exist_ok=True)
  # Imported here: clu's writers import TensorFlow (seconds), which `evaluate.py --help` and
  # the users of `scores` do not need.
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(directory, asynchronous=False)
  entries = [
      _evaluate_dataset(fns, module.num_input_frames, name, split, data_dir=data_dir,
                        max_clips=max_clips, tile=tile, num_grids=num_grids,
                        grid_frames=grid_frames,
                        directory=directory, writer=writer, step=run.step)
      for name, split in datasets]

  seconds, timing_tile = None, None
  if timing_size:
    seconds, timing_tile = inference.time_per_frame(
        fns["finetuned"], module.num_input_frames, tuple(timing_size), tile=tile)
  report = {
      "checkpoint": source, "step": run.step, "model": model,
      "window": module.num_input_frames, "baseline": baseline,
      "device": inference.device_description(), "time_per_frame_s": seconds,
      "timing_size": list(timing_size) if timing_size else None, "timing_tile": timing_tile,
      "datasets": entries,
  }
  paths = report_lib.write(directory, report)
  writer.write_scalars(run.step, {
      f"{entry['name']}:{entry['split']}/{column}_{metric}": value
      for entry in entries for column, scores in entry["mean"].items()
      for metric, value in scores.items()})
  writer.close()
  logging.info("Wrote %s and %s.", *paths)
  return report


def _evaluate_dataset(fns: dict, window: int, name: str, split: str, *, data_dir: str | None,
                      max_clips: int, tile: int | None, num_grids: int,
                      grid_frames: Sequence[int] | None, directory: str,
                      writer: metric_writers.MetricWriter, step: int) -> dict:
  """Scores every clip of one data set; writes its grids; returns its `report.summarize` entry."""
  source = pipeline.data_source(name, split, data_dir)
  count = len(source) if max_clips < 0 else min(max_clips, len(source))
  if grid_frames is not None:
    shown = set(grid_frames)
  else:
    shown = set(np.linspace(0, count - 1, num_grids).round().astype(int)) if num_grids else set()
  tiles, rows = {}, []
  for index in tqdm.trange(count, desc=f"{name}:{split}", unit="frame", dynamic_ncols=True):
    example = source[index]
    if "sharp" not in example:
      raise ValueError(f"{name} has no sharp frames to score against; evaluate on a labeled "
                       "set (synthetic_blur, gopro, dvd) and deblur unlabeled video with "
                       "`python -m reblur_jax.deblur`.")
    windows, sharp = centred_window(example, window)
    if windows.shape not in tiles:
      tiles[windows.shape] = inference.choose_tile(fns["finetuned"], windows.shape, tile=tile)
    images = {"blurry": windows[0, window // 2]}
    images.update({column: inference.restore(fn, windows, tile=tiles[windows.shape])[0]
                   for column, fn in fns.items()})
    psnr, ssim = jax.device_get(scores(np.stack(list(images.values())), sharp))
    sequence = _text(example["sequence"])
    rows.append({"sequence": sequence, "frame": int(example["frame"]),
                 **{column: {"psnr": float(p), "ssim": float(s)}
                    for column, p, s in zip(images, psnr, ssim)}})
    if index in shown:
      panels = {report_lib.COLUMNS[c]: metrics.quantize(x) for c, x in images.items()}
      grid = grids.comparison({**panels, "sharp": sharp})
      label = f"{name.replace('/', '_')}_{split}_{sequence}_{int(example['frame']):06d}"
      Image.fromarray(grid).save(os.path.join(directory, f"grid_{label}.png"))
      writer.write_images(step, {f"{name}:{split}/{sequence}_{int(example['frame'])}": grid[None]})
  return report_lib.summarize(rows, name=name, split=split)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)
