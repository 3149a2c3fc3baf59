"""Frames/s of the deblur command's streaming path next to the network alone, same frames.

Writes `--frames` 1280x720 PNG frames (a smooth moving pattern), then times
(1) the model alone: the jitted network on each frame's window already on the device, and
(2) the command's path, `inference.deblur_frames` from the folder to PNG files (`video.frames`
decoding, prefetched; windows; the network; `video.write` encoding),
the model after one compiling frame, the command on all `--frames` + 1 (its figure includes the
one probing call of `choose_tile`, which a long video amortises, but not the command's first
pass that checks every frame decodes). The command's ratio to the model is what overlapping decoding
and encoding with the network buys (the issue's target: >= 0.9). Random DVD weights (speed does
not depend on them); `--width=0.25` is the `:cpu` configs' (the demo's) width:

  JAX_PLATFORMS=cpu python benchmarks/deblur_throughput.py --width=0.25 --frames=4
  JAX_PLATFORMS=cpu python benchmarks/deblur_throughput.py --width=1 --frames=2 --repeats=2
"""

import os
import statistics
import tempfile
import time

import imageio.v3 as iio
import jax
import numpy as np
from absl import app
from absl import flags

from reblur_jax import models
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.evaluation import video


def write_frames(folder: str, count: int, size: tuple[int, int]) -> None:
  y, x = np.mgrid[:size[0], :size[1]].astype(np.float32)
  for i in range(count):
    image = 127.5 + 127.5 * np.sin(np.stack([(x + 7 * i) / 23, y / 31, (x + y + 5 * i) / 41], -1))
    iio.imwrite(os.path.join(folder, f"{i:04d}.png"), image.astype(np.uint8))


def define_flags():
  flags.DEFINE_float("width", 0.25, "Channel multiplier of the DVD network.")
  flags.DEFINE_integer("frames", 6, "Timed 1280x720 frames (one more is written).", lower_bound=1)
  flags.DEFINE_integer("repeats", 3, "interleaved model/command runs", lower_bound=1)


def main(argv):
  del argv
  args = flags.FLAGS
  module = models.create("dvd", width=args.width)
  window = module.num_input_frames
  variables = jax.jit(module.init)(jax.random.key(0), np.zeros((1, window, 64, 64, 3), np.float32))
  fn = networks.deblur_fn(module, variables)
  with tempfile.TemporaryDirectory() as tmp:
    source_dir = os.path.join(tmp, "in")
    os.makedirs(source_dir)
    write_frames(source_dir, args.frames + 1, (720, 1280))
    source = video.open_source(source_dir)
    frames = [f for _, f in video.frames(source)]
    clips = [jax.device_put(c[None].astype(np.float32) / 255.0)
             for c in video.windows(frames, window)]
    jax.block_until_ready(fn(clips[0]))  # Compiles.

    def model():
      start = time.perf_counter()
      for clip in clips[1:]:
        jax.block_until_ready(fn(clip))
      return args.frames / (time.perf_counter() - start)

    def command():
      names = (os.path.splitext(os.path.basename(p))[0] for p in source.image_paths)
      stream = (f for _, f in video.frames(source))
      start = time.perf_counter()  # Compiled already: same function, same shape.
      video.write(os.path.join(tmp, "out"),
                  zip(names, inference.deblur_frames(fn, stream, window, tile=0)))
      return (args.frames + 1) / (time.perf_counter() - start)

    # Interleaved, so that a machine shared with other jobs loads both alike.
    rates = {"model": [], "command": []}
    for _ in range(args.repeats):
      rates["model"].append(model())
      rates["command"].append(command())
  fps = {k: statistics.median(v) for k, v in rates.items()}
  spread = lambda v: f"{min(v):.3f}-{max(v):.3f}"
  print(f"{jax.devices()[0].device_kind}, DVD width {args.width}, {args.frames} + 1 frames "
        f"1280x720, median of {args.repeats} interleaved: model {fps['model']:.3f} frames/s "
        f"({spread(rates['model'])}), command {fps['command']:.3f} frames/s "
        f"({spread(rates['command'])}), ratio {fps['command'] / fps['model']:.2f}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
