"""Speed of the three networks: JAX next to the PyTorch originals (tests/torch_reference.py).

Two cases per network, with the same weights on both sides (converted from the PyTorch model):
- `forward720`: forward pass of one 1280x720 frame (batch 1), as in evaluation.
- `train128`: forward + backward of a batch of 10 at 128x128 (gradients of a mean over the
  output), as in fine-tuning; DVD with frozen batch statistics, DeblurGAN without dropout,
  FlowNetS returning full-resolution flow.

Times are medians over `--repeats` runs after one warm-up run (JAX compiles there). Both
frameworks are pinned to the same `--threads` CPUs. On a GPU backend only JAX is timed.

  python benchmarks/models.py                          # everything, all CPUs
  python benchmarks/models.py --models=dvd --cases=train128 --threads=2
  python benchmarks/models.py --json=/tmp/models.json   # also the rows as JSON

`--json` writes a list of `{"network", "task", "jax_s", "torch_s", "jax_first_s", "threads",
"width"}` (`torch_s` null without PyTorch).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from absl import app
from absl import flags

from reblur_jax import models
from reblur_jax.models import convert
from reblur_jax.models import flownet

# The PyTorch originals live with the tests they check the port against, not in the package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

CASES = {"forward720": (1, 720, 1280), "train128": (10, 128, 128)}  # batch, height, width


def build(name: str, width: float):
  """`(flax model, variables, torch model)` with the same weights."""
  torch.manual_seed(0)
  if name == "dvd":
    ref = torch_reference.DVD(width=width).eval()
    flat = torch.cat([p.detach().reshape(-1) for p in ref.parameters()]).numpy()
    bns = [m for m in ref.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    variables = convert.dvd_variables(flat, [m.running_mean.numpy() for m in bns],
                                      [m.running_var.numpy() for m in bns], width=width)
  else:
    ref = (torch_reference.ResnetGenerator if name == "deblurgan"
           else torch_reference.FlowNetS)(width).eval()
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    variables = getattr(convert, f"{name}_variables")(state, width=width)
  return models.create(name, width=width), jax.device_put(variables), ref


def jax_inputs(name: str, batch: int, height: int, width: int):
  rng = np.random.default_rng(0)
  if name == "flownets":
    return tuple(jnp.asarray(rng.random((batch, height, width, 3), np.float32)) for _ in range(2))
  frames = 5 if name == "dvd" else 1
  return (jnp.asarray(rng.random((batch, frames, height, width, 3), np.float32)),)


def torch_forward(name: str, ref, inputs):
  """The original's own forward on the same `[0, 1]` inputs, output comparable to ours."""
  if name == "flownets":
    mean = torch.tensor(flownet.MEAN_RGB).reshape(1, 3, 1, 1)
    x = torch.cat([inputs[0] - mean, inputs[1] - mean], 1)
    return flownet.DIV_FLOW * F.interpolate(ref(x), size=x.shape[2:], mode="bilinear",
                                            align_corners=False)
  x = inputs[0].flatten(1, 2)  # [B, n, 3, H, W] -> frames stacked on channels.
  return ref(x) if name == "dvd" else ref(2 * x - 1)


def timed(fn, repeats: int) -> tuple[float, float]:
  """`(first call, median of the next `repeats`)` in seconds."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return first, statistics.median(times)


def bench(name: str, case: str, repeats: int, with_torch: bool, width: float,
          threads: int) -> dict:
  model, variables, ref = build(name, width)
  inputs = jax_inputs(name, *CASES[case])
  if case == "forward720":
    jax_fn = jax.jit(model.apply)
    run_jax = lambda: jax.block_until_ready(jax_fn(variables, *inputs))
  else:
    loss = lambda params: jnp.mean(model.apply({**variables, "params": params}, *inputs))
    grad_fn = jax.jit(jax.grad(loss))
    run_jax = lambda: jax.block_until_ready(grad_fn(variables["params"]))
  compile_and_run, jax_time = timed(run_jax, repeats)
  row = {"network": name, "task": case, "jax_s": jax_time, "torch_s": None,
         "jax_first_s": compile_and_run, "threads": threads, "width": width}
  if with_torch:
    torch_inputs = tuple(torch.from_numpy(np.moveaxis(np.asarray(x), -1, -3).copy())
                         for x in inputs)

    def run_torch():
      if case == "forward720":
        with torch.no_grad():
          torch_forward(name, ref, torch_inputs)
      else:
        ref.zero_grad()
        torch_forward(name, ref, torch_inputs).mean().backward()

    _, row["torch_s"] = timed(run_torch, repeats)
  return row


def define_flags():
  flags.DEFINE_list("models", ["dvd", "deblurgan", "flownets"],
                    "Networks: dvd, deblurgan, flownets.")
  flags.DEFINE_list("cases", ["forward720", "train128"], "Cases: forward720, train128.")
  flags.DEFINE_integer("repeats", 3, "Timed runs after one warm-up run.", lower_bound=1)
  flags.DEFINE_float("width", 1.0, "channel multiplier")
  flags.DEFINE_integer("threads", len(os.sched_getaffinity(0)), "CPUs to run on.", lower_bound=1)
  flags.DEFINE_bool("torch", True, "Also time the PyTorch originals (--notorch: JAX only).")
  flags.DEFINE_string("json", None, "also write the rows to this file")


def main(argv):
  del argv
  args = flags.FLAGS
  # Before jax's and torch's first computations start their thread pools: both then use exactly
  # these CPUs.
  os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.threads])
  with_torch = args.torch and jax.default_backend() == "cpu"
  torch.set_num_threads(args.threads)
  print(f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"{args.threads} threads, width {args.width}, median of {args.repeats}")
  print("| model | case | JAX s | PyTorch s | JAX / PyTorch | JAX first call s |")
  print("|---|---|---|---|---|---|")
  rows = []
  for case in args.cases:
    for name in args.models:
      row = bench(name, case, args.repeats, with_torch, args.width, args.threads)
      rows.append(row)
      torch_s = f"{row['torch_s']:.3f}" if with_torch else "-"
      ratio = f"{row['jax_s'] / row['torch_s']:.2f}" if with_torch else "-"
      print(f"| {name} | {case} | {row['jax_s']:.3f} | {torch_s} | {ratio} | "
            f"{row['jax_first_s']:.1f} |", flush=True)
      if args.json:  # After every row: a long run stopped early keeps what it measured.
        pathlib.Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
