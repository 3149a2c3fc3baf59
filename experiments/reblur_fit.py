r"""Does a lower reblur loss mean a sharper frame? Each network's output measured both ways.

  python -m experiments.reblur_fit --split=test --checkpoints=pretrained/dvd,\
runs/reproduce_m/dvd_reblur,runs/reproduce_m/dvd_alpha0,pretrained/deblurgan,\
runs/reproduce_m/deblurgan_reblur,runs/reproduce_m/deblurgan_alpha0

For every frame of a split's sequences and each network (a training run or a shipped network):
PSNR of its output to the sharp frame, and its *reblur PSNR*: the output blurred back by the conv
blur model with TV-L1 flows of the blurry frames and `--tau`, against the blurry frame. That is
what `L_U` with the demo's flows measures, here on whole frames, where training sees crops. The
sharp and the blurry frames themselves are measured the same way: the sharp frame's reblur PSNR
is where `L_U` would stop if it led to the sharp frame, and a network whose output reblurs closer
than that is being fitted to the flows' and the blur model's errors. Diagnostic only: the test
split may be read, nothing is chosen on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from absl import app
from absl import flags

from experiments import adaptation
from reblur_jax import blur
from reblur_jax import metrics
from reblur_jax.data import estimated_flows
from reblur_jax.evaluation import networks

Video = tuple[np.ndarray, np.ndarray]  # (blurry, sharp), each uint8 [T, H, W, 3].


def _float(frames: np.ndarray) -> np.ndarray:
  return frames.astype(np.float32) / np.float32(255.0)


def reblur_psnr(frames: np.ndarray, blurry: np.ndarray,
                flows: tuple[np.ndarray, np.ndarray], tau: float) -> float:
  """Mean PSNR (dB) of `frames` (uint8 `[T, H, W, 3]`) reblurred with `flows` (`(flow_prev,
  flow_next)`, `[T, H, W, 2]` pixels) and exposure `tau`, against `blurry`."""
  reblurred = blur.reblur_batch(_float(frames), *flows, tau=tau, method="conv")
  return float(np.mean(metrics.psnr(metrics.quantize(reblurred), _float(blurry))))


def measure(outputs: Mapping[str, Mapping[str, np.ndarray]], videos: Mapping[str, Video],
            tau: float) -> dict[str, tuple[float, float]]:
  """`{row: (PSNR to sharp, reblur PSNR)}`, means over every frame of `videos`.

  `outputs` maps a row name to `{sequence: uint8 [T, H, W, 3]}`; the rows "sharp" and "blurry"
  (the frames themselves) come first. TV-L1 flows are computed once per sequence.
  """
  flows = {name: estimated_flows.video_flows(blurry) for name, (blurry, _) in videos.items()}
  rows = {"sharp": {name: sharp for name, (_, sharp) in videos.items()},
          "blurry": {name: blurry for name, (blurry, _) in videos.items()}, **outputs}
  results = {}
  for row, frames in rows.items():
    psnr, fit, count = 0.0, 0.0, 0
    for name, (blurry, sharp) in videos.items():
      n = len(blurry)
      if row != "sharp":
        psnr += n * float(np.mean(metrics.psnr(_float(frames[name]), _float(sharp))))
      fit += n * reblur_psnr(frames[name], blurry, flows[name], tau)
      count += n
    results[row] = (psnr / count if row != "sharp" else float("inf"), fit / count)
  return results


def markdown(results: Mapping[str, tuple[float, float]]) -> str:
  lines = ["| frames | PSNR to sharp (dB) | reblur PSNR (dB) |", "|---|--:|--:|"]
  for row, (psnr, fit) in results.items():
    lines.append(f"| {row} | {'' if np.isinf(psnr) else f'{psnr:.2f}'} | {fit:.2f} |")
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  videos = adaptation.split_videos(args.dataset, args.split, args.data_dir)
  outputs = {}
  for path in args.checkpoints:
    run = networks.restore(path)
    outputs[path] = {name: run.deblur(blurry) for name, (blurry, _) in videos.items()}
  frames = sum(len(blurry) for blurry, _ in videos.values())
  print(f"{args.dataset}:{args.split}, {frames} frames; reblur: conv, TV-L1 flows of the blurry "
        f"frames, tau {args.tau:g}.\n")
  print(markdown(measure(outputs, videos, args.tau)))


def _define_flags() -> None:
  """Flags, defined only when run as a program."""
  flags.DEFINE_list("checkpoints", [], "Training runs or shipped networks to measure.")
  flags.DEFINE_string("dataset", "synthetic_blur/study_t7", "Labeled set of the sequences.")
  flags.DEFINE_string("split", "test", "Its split.")
  flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  flags.DEFINE_float("tau", 0.5, "Exposure of the blur model (0.5: the synthetic sets').")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
