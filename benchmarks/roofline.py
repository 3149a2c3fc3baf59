"""FLOPs of the three networks (XLA's cost analysis) against this machine's measured peak.

Prints, per network: GFLOP of one 1280x720 forward pass and of one forward + backward pass of
10 x 128 x 128 (the `benchmarks/models.py` cases), and the peak GFLOP/s of a float32 matmul
(`--matmul` square, the best of `--repeats`), so that a measured time converts to a fraction of
peak (docs/performance.md):

  JAX_PLATFORMS=cpu python benchmarks/roofline.py
"""

import time

import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from reblur_jax import models

CASES = {"forward720": (1, 720, 1280), "train128": (10, 128, 128)}


def gflop(name: str, case: str) -> float:
  batch, height, width = CASES[case]
  model = models.create(name)
  if name == "flownets":
    inputs = (jax.ShapeDtypeStruct((batch, height, width, 3), jnp.float32),) * 2
  else:
    frames = model.num_input_frames
    inputs = (jax.ShapeDtypeStruct((batch, frames, height, width, 3), jnp.float32),)
  variables = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  if case == "forward720":
    fn = model.apply
  else:
    fn = jax.grad(lambda v, *x: jnp.mean(model.apply(v, *x)))
  return jax.jit(fn).lower(variables, *inputs).cost_analysis()["flops"] / 1e9


def peak_gflops(size: int, repeats: int) -> float:
  a = jnp.ones((size, size), jnp.float32)
  matmul = jax.jit(lambda a: a @ a)
  matmul(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * size**3 / best / 1e9


def define_flags():
  flags.DEFINE_integer("matmul", 2048, "Side of the square float32 matmul.", lower_bound=1)
  flags.DEFINE_integer("repeats", 5, "Timed matmuls; the best counts.", lower_bound=1)


def main(argv):
  del argv
  args = flags.FLAGS
  print(f"peak: {peak_gflops(args.matmul, args.repeats):.1f} GFLOP/s (float32 {args.matmul}^2 "
        f"matmul, best of {args.repeats}, {jax.devices()[0].device_kind})")
  print("| network | forward 1280x720 GFLOP | fwd+bwd 10x128x128 GFLOP |")
  print("|---|---|---|")
  for name in ("dvd", "deblurgan", "flownets"):
    print(f"| {name} | {gflop(name, 'forward720'):.1f} | {gflop(name, 'train128'):.1f} |",
          flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
