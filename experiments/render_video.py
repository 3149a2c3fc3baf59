r"""Renders one synthetic blurry video and its sharp frames as MP4 files, for `make demo`.

  python -m experiments.render_video --output=runs/demo/video

Writes `<output>/blurry.mp4` and `<output>/sharp.mp4` (`reblur_jax.data.synthetic`, test photos
and test motion by default, a seed no data set uses), ready for `python -m reblur_jax.deblur
--input=<output>/blurry.mp4`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import imageio.v3 as iio
from absl import app
from absl import flags

from reblur_jax.data import synthetic
from reblur_jax.data.builders import synthetic_blur

_FPS = 12


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  video = synthetic.render_sequence(args.seed, split=args.split, num_frames=args.frames,
                                    height=args.size, width=args.size, max_speed=args.max_speed)
  os.makedirs(args.output, exist_ok=True)
  for name in ("blurry", "sharp"):
    # Near-lossless H.264 (crf 12), so that compression does not add its own blur.
    iio.imwrite(os.path.join(args.output, f"{name}.mp4"), video[name], plugin="FFMPEG",
                fps=_FPS, codec="libx264", macro_block_size=1, output_params=["-crf", "12"])
  print(f"Wrote blurry.mp4 and sharp.mp4 ({args.frames} frames, {args.size}x{args.size}) to "
        f"{os.path.abspath(args.output)}.")


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_string("output", "runs/demo/video", "Folder for blurry.mp4, sharp.mp4.")
  flags.DEFINE_enum("split", "test", list(synthetic.PHOTOS), "Which photos.")
  # Past the test split's sequences: a video that no data set holds.
  flags.DEFINE_integer("seed", synthetic_blur.TEST_SEED_OFFSET + 100, "Sequence seed.")
  flags.DEFINE_integer("frames", 48, "Frames.")
  flags.DEFINE_integer("size", 192, "Frame side in pixels.")
  flags.DEFINE_float("max_speed", 18.0, "Motion bound, pixels per frame (the study's "
                     "test split: 18).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
