"""FlowNetS off the /64 grid: which input extension comes closest to the original's unpadded run.

FlowNetPytorch runs FlowNetS on any size (its decoder crops each upsampled map to the skip's
size); the port pads to a multiple of 64 and crops back. This script compares, at sizes off the
grid, the unpadded original's full-resolution flow with the flow of the padded / resized input:

- `zero`, `edge`, `reflect`: the mean-subtracted input padded at the bottom/right (`jnp.pad`'s
  "constant", "edge", "reflect", here torch's "constant", "replicate", "reflect"), cropped back;
- `resize`: the input bilinearly resized to the nearest multiples of 64, the flow resized back
  and its vectors rescaled;
- `crop`: the input cropped to the multiples of 64 below, the missing rows/columns of the flow
  filled with its last row/column.

The networks are tests/torch_reference.FlowNetS (the port equals it to ~1e-5 px on the same
padded input, tests/test_convert.py), once with FlowNetPytorch's random initialisation and once
briefly trained on synthetic pairs at 128x128 (a multiple of 64, as the original trains on
320x448 crops): smooth random textures, the first image sampled from the second along a smooth
random flow of up to ~10 px, FlowNetPytorch's multi-scale EPE loss. Random weights say little
about how a trained network treats a border, hence the training.

  python benchmarks/flownets_padding.py                    # ~25 minutes on 2 shared CPUs
  python benchmarks/flownets_padding.py --steps=0          # random weights only
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from absl import app
from absl import flags

# The PyTorch originals live with the tests they check the port against, not in the package.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
import torch_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

DIV_FLOW = 20.0
WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)
MEAN = torch.tensor((0.411, 0.432, 0.45)).view(1, 3, 1, 1)  # docs/models.md.
MODES = ("zero", "edge", "reflect", "resize", "crop")
SIZES = ((80, 96), (72, 136), (100, 150), (120, 200))
BORDER = 16


def texture(gen: torch.Generator, batch: int, height: int, width: int) -> torch.Tensor:
  """Smooth random colour textures in [0, 1]: noise summed over four octaves."""
  out = torch.zeros(batch, 3, height, width)
  for octave in range(4):
    cells = 4 * 2**octave
    noise = torch.rand(batch, 3, cells, cells, generator=gen)
    out += F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False) / (
        1.5**octave)
  lo = out.amin((1, 2, 3), keepdim=True)
  hi = out.amax((1, 2, 3), keepdim=True)
  return (out - lo) / (hi - lo)


def pairs(gen: torch.Generator, batch: int, height: int, width: int):
  """`(first, second, flow)` with `first(p) = second(p + flow(p))`, images `[B, 3, H, W]`.

  Both come from one larger texture, so content enters and leaves at the borders as in video.
  """
  margin = 16
  big = texture(gen, batch, height + 2 * margin, width + 2 * margin)
  coarse = (torch.rand(batch, 2, 3, 3, generator=gen) - 0.5) * 12
  shift = (torch.rand(batch, 2, 1, 1, generator=gen) - 0.5) * 8
  flow = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False) + shift
  flow = flow.clamp(-margin + 1, margin - 1)
  ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                          torch.arange(width, dtype=torch.float32), indexing="ij")
  x = xs + margin + flow[:, 0]
  y = ys + margin + flow[:, 1]
  grid = torch.stack([2 * x / (width + 2 * margin - 1) - 1, 2 * y / (height + 2 * margin - 1) - 1],
                     -1)
  first = F.grid_sample(big, grid, mode="bilinear", align_corners=True)
  second = big[:, :, margin:margin + height, margin:margin + width]
  return first, second, flow


def network_input(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
  return torch.cat([first - MEAN, second - MEAN], 1)


def multiscale_epe(flows, target: torch.Tensor) -> torch.Tensor:
  """FlowNetPytorch's loss: per scale, summed EPE against the area-averaged target / 20."""
  loss = 0.0
  for flow, weight in zip(flows, WEIGHTS):
    scaled = F.adaptive_avg_pool2d(target / DIV_FLOW, flow.shape[2:])
    loss = loss + weight * torch.norm(scaled - flow, 2, 1).sum() / flow.shape[0]
  return loss


def full_flow(net, x: torch.Tensor) -> torch.Tensor:
  """The original's inference: flow2 upsampled bilinearly to the input's size, times 20."""
  return DIV_FLOW * F.interpolate(net(x), size=x.shape[2:], mode="bilinear", align_corners=False)


def extended_flow(net, x: torch.Tensor, mode: str) -> torch.Tensor:
  height, width = x.shape[2:]
  if mode in ("zero", "edge", "reflect"):
    pad = (0, -width % 64, 0, -height % 64)
    torch_mode = {"zero": "constant", "edge": "replicate", "reflect": "reflect"}[mode]
    return full_flow(net, F.pad(x, pad, mode=torch_mode))[:, :, :height, :width]
  if mode == "resize":
    h64, w64 = max(64, round(height / 64) * 64), max(64, round(width / 64) * 64)
    small = full_flow(net, F.interpolate(x, size=(h64, w64), mode="bilinear",
                                         align_corners=False))
    flow = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return flow * torch.tensor([width / w64, height / h64]).view(1, 2, 1, 1)
  if mode == "crop":
    h64, w64 = height // 64 * 64, width // 64 * 64
    flow = full_flow(net, x[:, :, :h64, :w64])
    return F.pad(flow, (0, width - w64, 0, height - h64), mode="replicate")
  raise ValueError(mode)


def epe(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
  return torch.norm(a - b, 2, 1)


def train(net, args) -> float:
  gen = torch.Generator().manual_seed(0)
  optimizer = torch.optim.Adam(net.parameters(), args.lr, betas=(0.9, 0.999))
  net.train()
  start, recent = time.time(), []
  for step in range(args.steps):
    first, second, flow = pairs(gen, args.batch, 128, 128)
    loss = multiscale_epe(net(network_input(first, second)), flow)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    recent = (recent + [loss.item()])[-50:]
    if (step + 1) % 50 == 0:
      print(f"  step {step + 1}: loss {np.mean(recent):.2f} ({time.time() - start:.0f} s)",
            file=sys.stderr)
  net.eval()
  return time.time() - start


@torch.no_grad()
def measure(net, args):
  """`{mode: (EPE to the unpadded original, same in the last 16 rows/cols)}`, mean over sizes,
  and the unpadded original's EPE to the ground truth."""
  net.eval()
  gen = torch.Generator().manual_seed(1)
  rows = {mode: [] for mode in MODES}
  truth = []
  for height, width in SIZES:
    first, second, flow = pairs(gen, args.pairs, height, width)
    x = network_input(first, second)
    original = full_flow(net, x)
    truth.append(epe(original, flow).mean().item())
    band = torch.zeros(height, width, dtype=torch.bool)
    band[-BORDER:, :] = band[:, -BORDER:] = True
    for mode in MODES:
      error = epe(extended_flow(net, x, mode), original)
      rows[mode].append((error.mean().item(), error[:, band].mean().item()))
  return {mode: np.mean(values, 0) for mode, values in rows.items()}, float(np.mean(truth))


def define_flags():
  flags.DEFINE_float("width", 0.25, "channel multiplier")
  flags.DEFINE_integer("steps", 400, "training steps (0: random only)", lower_bound=0)
  flags.DEFINE_integer("batch", 8, "Training pairs per step.", lower_bound=1)
  flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
  flags.DEFINE_integer("pairs", 16, "test pairs per size", lower_bound=1)
  flags.DEFINE_integer("threads", 2, "PyTorch CPU threads.", lower_bound=1)


def main(argv):
  del argv
  args = flags.FLAGS
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  net = torch_reference.FlowNetS(args.width)
  results = {"random": measure(net, args)}
  if args.steps:
    seconds = train(net, args)
    results["trained"] = measure(net, args)
    print(f"trained {args.steps} steps of {args.batch} x 128x128 in {seconds:.0f} s")
  sizes = ", ".join(f"{h}x{w}" for h, w in SIZES)
  print(f"\nFlowNetS width {args.width}; mean EPE (px) to the unpadded original over {sizes}, "
        f"{args.pairs} pairs each; 'band' = last {BORDER} rows/columns.\n")
  names = list(results)
  print("| input extension | " + " | ".join(f"{n}: all | {n}: band" for n in names) + " |")
  print("|---" * (1 + 2 * len(names)) + "|")
  for mode in MODES:
    cells = " | ".join(f"{results[n][0][mode][0]:.3f} | {results[n][0][mode][1]:.3f}"
                       for n in names)
    print(f"| {mode} | {cells} |")
  for n in names:
    print(f"\n{n}: the unpadded original's EPE to the ground truth {results[n][1]:.2f} px")


if __name__ == "__main__":
  define_flags()
  app.run(main)
