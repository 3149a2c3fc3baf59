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

_OUTPUT = flags.DEFINE_string("output", "runs/demo/video", "Folder for blurry.mp4, sharp.mp4.")
_SPLIT = flags.DEFINE_enum("split", "test", list(synthetic.PHOTOS), "Which photos.")
# Past the test split's sequences: a video that no data set holds.
_SEED = flags.DEFINE_integer("seed", synthetic_blur.TEST_SEED_OFFSET + 100, "Sequence seed.")
_FRAMES = flags.DEFINE_integer("frames", 48, "Frames.")
_SIZE = flags.DEFINE_integer("size", 192, "Frame side in pixels.")
_SPEED = flags.DEFINE_float("max_speed", 18.0, "Motion bound, pixels per frame (the study's "
                            "test split: 18).")
_FPS = 12


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  video = synthetic.render_sequence(_SEED.value, split=_SPLIT.value, num_frames=_FRAMES.value,
                                    height=_SIZE.value, width=_SIZE.value,
                                    max_speed=_SPEED.value)
  os.makedirs(_OUTPUT.value, exist_ok=True)
  for name in ("blurry", "sharp"):
    # Near-lossless H.264 (crf 12), so that compression does not add its own blur.
    iio.imwrite(os.path.join(_OUTPUT.value, f"{name}.mp4"), video[name], plugin="FFMPEG",
                fps=_FPS, codec="libx264", macro_block_size=1, output_params=["-crf", "12"])
  print(f"Wrote blurry.mp4 and sharp.mp4 ({_FRAMES.value} frames, {_SIZE.value}x{_SIZE.value}) "
        f"to {os.path.abspath(_OUTPUT.value)}.")


if __name__ == "__main__":
  app.run(main)
