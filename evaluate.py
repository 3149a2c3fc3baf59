r"""Scores a trained checkpoint: `python evaluate.py --workdir=<training workdir>`.

Restores the newest checkpoint of --workdir (or --checkpoint), and the baseline it was fine-tuned
from (the config's init_checkpoint), runs both over the evaluation sets at native resolution and
writes <workdir>/eval/report.md, report.json, comparison grids (PNG) and TensorBoard summaries:
PSNR / SSIM of the blurry input, the baseline and the fine-tuned network per data set and per
sequence, and the time per frame at 1280x720 on this machine's first device. docs/evaluation.md.

  python evaluate.py --workdir=runs/dvd_reblur
  python evaluate.py --workdir=runs/dvd_reblur --datasets=dvd/default_t7:test30,gopro/blur_t7:test \
      --data_dir=~/tensorflow_datasets

The settings come from the checkpoint's own config unless --config gives a config file (then
with overrides, e.g. --config=configs/dvd_reblur.py --config.init_checkpoint=...).
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

from reblur_jax import console
from reblur_jax.evaluation import report

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir; reports go to <workdir>/eval.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (default: the config the checkpoint was trained with).",
    lock_config=True)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Checkpoint to score: a workdir or <workdir>/checkpoints/<step> "
    "(default: the newest in --workdir).")
_DATASETS = flags.DEFINE_list(
    "datasets", None, "Data sets as name[:split], e.g. dvd/default_t7:test30 (default: the "
    "config's eval_dataset:eval_split).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory (default: the config's).")
_MAX_CLIPS = flags.DEFINE_integer("max_clips", -1, "Clips per data set (-1: all).")
_TILE = flags.DEFINE_integer("tile", None, "Tile side in pixels; 0: whole frames (default: "
                             "whole frames unless they do not fit in device memory).")
_TIMING_SIZE = flags.DEFINE_string("timing_size", "1280x720",
                                   "WxH of the timed frames; empty to skip timing.")
_NUM_GRIDS = flags.DEFINE_integer("num_grids", 2, "Comparison pictures per data set.")


def _size(text: str) -> tuple[int, int] | None:
  """"1280x720" -> (720, 1280), as (H, W)."""
  if not text:
    return None
  try:
    width, height = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise ValueError(f"--timing_size={text!r}: expected WIDTHxHEIGHT; pass e.g. 1280x720, or '' "
                     "to skip timing.") from None
  return height, width


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  console.quiet()
  # Imported once the flags are parsed, so that --help and flag errors answer at once.
  from reblur_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from reblur_jax.evaluation import scoring  # pylint: disable=g-import-not-at-top

  try:
    result = scoring.score_checkpoint(
        _CONFIG.value, _WORKDIR.value, checkpoint_path=_CHECKPOINT.value,
        datasets=_DATASETS.value, data_dir=_DATA_DIR.value, max_clips=_MAX_CLIPS.value,
        tile=_TILE.value, timing_size=_size(_TIMING_SIZE.value) or None,
        num_grids=_NUM_GRIDS.value)
  # The message says what to fix (CheckpointError: no step of the run reads).
  except (FileNotFoundError, ValueError, MemoryError, checkpoint.CheckpointError) as e:
    raise SystemExit(f"error: {e}") from None
  print(report.to_markdown(result))
  directory = os.path.join(os.path.abspath(_WORKDIR.value), scoring.EVAL_DIR)
  print(f"Report in {os.path.join(directory, 'report.md')} (and report.json, comparison grids "
        f"and TensorBoard summaries in {directory}).")


if __name__ == "__main__":
  app.run(main)
