"""Speed and memory of the blur model: `conv`, `warp` and the literal dense formulation.

Forward + backward (gradients of a mean over the output w.r.t. the image and both flows) of
`reblur_batch` with per-pixel random flows in [-16, 16], at the paper's Table 3 setting
(10 x 128 x 128 RGB) and for one 1280x720 frame. The dense formulation builds each pixel's
33x33 kernel from the table (`flow_to_kernel`) and applies it to the pixel's neighbourhood
(`apply_kernel`); it runs at the largest batch whose XLA temporary memory fits `--dense_budget`
(default: half the machine's available memory), where `conv` and `warp` are timed as well, so
the ratios compare equal shapes. Shapes it cannot fit are compiled, not run: their memory is
still reported. Times are medians over `--repeats` runs after one warm-up run.

  python benchmarks/blur.py
  python benchmarks/blur.py --threads=2 --repeats=5
"""

from __future__ import annotations

import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

from reblur_jax import blur

MAX_DISP = 16
TABLE3 = (10, 128, 128)  # batch, height, width
FRAME720 = (1, 720, 1280)


def dense_batch(sharp, flow_prev, flow_next):
  """The literal formulation: a dense 33x33 kernel per pixel, applied to its neighbourhood."""
  def one(s, fp, fn):
    return blur.apply_kernel(s, blur.flow_to_kernel(fp, fn, max_disp=MAX_DISP))
  return jax.vmap(one)(sharp, flow_prev, flow_next)


FORMULATIONS = {
    "conv": lambda s, fp, fn: blur.reblur_batch(s, fp, fn, method="conv", max_disp=MAX_DISP),
    "warp": lambda s, fp, fn: blur.reblur_batch(s, fp, fn, method="warp", samples=8),
    "dense": dense_batch,
}


def inputs(batch, height, width):
  rng = np.random.default_rng(0)
  sharp = rng.random((batch, height, width, 3), np.float32)
  flows = rng.uniform(-MAX_DISP, MAX_DISP, (2, batch, height, width, 2)).astype(np.float32)
  return jnp.asarray(sharp), jnp.asarray(flows[0]), jnp.asarray(flows[1])


def compiled_grad(name, shape):
  """`(compiled fwd+bwd, its inputs, XLA temporary bytes)`."""
  forward = FORMULATIONS[name]
  grad = jax.jit(jax.grad(lambda *a: jnp.mean(forward(*a)), argnums=(0, 1, 2)))
  args = inputs(*shape)
  compiled = grad.lower(*args).compile()
  return compiled, args, compiled.memory_analysis().temp_size_in_bytes


def median_time(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def available_bytes():
  with open("/proc/meminfo") as f:
    fields = dict(line.split(":") for line in f)
  return int(fields["MemAvailable"].split()[0]) * 1024


def measure(name, shape, repeats, budget=float("inf")):
  """Compiles fwd+bwd of `name` at `shape`; times it if its temporary memory fits `budget`."""
  compiled, args, temp = compiled_grad(name, shape)
  seconds = median_time(compiled, args, repeats) if temp <= budget else None
  return {"method": name, "shape": shape, "seconds": seconds, "temp": temp}


def print_row(row, dense=None):
  shape = "x".join(map(str, row["shape"])) + "x3"
  seconds = "did not fit" if row["seconds"] is None else f"{row['seconds']:.3f}"
  ratios = "| | |"
  if dense is not None and row["method"] != "dense":
    speed = "-" if None in (row["seconds"], dense["seconds"]) else (
        f"{dense['seconds'] / row['seconds']:.1f}x")
    ratios = f"| {speed} | {dense['temp'] / row['temp']:.0f}x |"
  print(f"| {row['method']} | {shape} | {seconds} | {row['temp'] / 2**20:.1f} {ratios}", flush=True)


def define_flags():
  flags.DEFINE_integer("repeats", 3, "Timed runs after one warm-up run.", lower_bound=1)
  flags.DEFINE_integer("threads", len(os.sched_getaffinity(0)), "CPUs to run on.", lower_bound=1)
  flags.DEFINE_float("dense_budget", None,
                     "GiB of XLA temporary memory the dense formulation may use")


def main(argv):
  del argv
  args = flags.FLAGS
  # Before jax's first computation starts its thread pool: it then uses exactly these CPUs.
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
  budget = args.dense_budget * 2**30 if args.dense_budget else available_bytes() / 2
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), {args.threads} "
        f"threads, median of {args.repeats}, dense budget {budget / 2**30:.1f} GiB")
  print("| method | shape | fwd+bwd s | XLA temp MiB | dense / this, time | dense / this, temp |")
  print("|---|---|---|---|---|---|")
  per_frame = compiled_grad("dense", (1, *TABLE3[1:]))[2]
  batch = int(max(1, min(TABLE3[0], budget // per_frame)))
  shapes = [(batch, *TABLE3[1:])] + ([TABLE3] if batch < TABLE3[0] else []) + [FRAME720]
  for shape in shapes:
    dense = measure("dense", shape, args.repeats, budget)
    for name in ["conv", "warp"]:
      print_row(measure(name, shape, args.repeats), dense)
    print_row(dense)


if __name__ == "__main__":
  define_flags()
  app.run(main)
