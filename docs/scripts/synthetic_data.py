"""Draws synthetic clips into docs/images/synthetic_data.png and measures their physics.

    python docs/scripts/synthetic_data.py [--out docs/images/synthetic_data.png] [--no-table]

The table (printed as markdown, copied into docs/synthetic_data.md) is the PSNR of
`reblur(sharp, flow_prev, flow_next, tau)` against the blurry frame, for several motion scales,
over whole frames and away from the generator's `boundary` mask.

Rows are clips (train and test photos); columns are the blurry frame, its sharp ground truth,
`flow_next` and `flow_prev` (hue = direction, saturation = speed; the legend wheel spans the
largest speed shown) and the pixels where the blur model cannot hold (occlusion and frame
boundaries, in red over the sharp frame).
"""

import argparse
import os
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np

from reblur_jax import blur
from reblur_jax.data import synthetic

CLIPS = (("train", 0), ("train", 1), ("train", 2), ("test", 0), ("test", 1))
SIZE = 128
# The physics table: motion scales, sequences per scale and frames per sequence.
SPEEDS = (2.0, 6.0, 12.0, 18.0)
SEQUENCES = 8
FRAMES = 4


def flow_to_rgb(flow: np.ndarray, max_norm: float) -> np.ndarray:
  """`[H, W, 2]` flow in pixels -> `[H, W, 3]` colours: hue = direction, saturation = speed."""
  u, v = flow[..., 0], flow[..., 1]
  hue = (np.arctan2(-v, -u) / (2 * np.pi)) % 1.0
  saturation = np.clip(np.hypot(u, v) / max_norm, 0.0, 1.0)
  return matplotlib.colors.hsv_to_rgb(np.stack([hue, saturation, np.ones_like(hue)], axis=-1))


def color_wheel(size: int, max_norm: float) -> np.ndarray:
  """The legend: the colour of every flow within `max_norm` pixels, `[size, size, 3]`."""
  r = np.linspace(-max_norm, max_norm, size)
  flow = np.stack(np.meshgrid(r, r), axis=-1)
  wheel = flow_to_rgb(flow, max_norm)
  wheel[np.hypot(flow[..., 0], flow[..., 1]) > max_norm] = 1.0
  return wheel


def draw(out: str):
  clips = [synthetic.render_sequence(seed, split=split, num_frames=3, height=SIZE, width=SIZE,
                                     return_boundaries=True) for split, seed in CLIPS]
  max_norm = max(np.abs(c[k][1]).max() for c in clips for k in ("flow_next", "flow_prev"))
  titles = ("blurry", "sharp (middle sub-frame)", "flow_next", "flow_prev", "boundary (red)")
  fig, axes = plt.subplots(len(clips), len(titles) + 1,
                           figsize=(2.2 * (len(titles) + 1), 2.2 * len(clips)))
  for row, ((split, seed), clip) in enumerate(zip(CLIPS, clips)):
    sharp = clip["sharp"][1] / 255.0
    overlay = np.where(clip["boundary"][1][..., None], [1.0, 0.0, 0.0], sharp)
    panels = (clip["blurry"][1], sharp, flow_to_rgb(clip["flow_next"][1], max_norm),
              flow_to_rgb(clip["flow_prev"][1], max_norm), 0.5 * sharp + 0.5 * overlay)
    for col, panel in enumerate(panels):
      axes[row, col].imshow(panel)
    axes[row, 0].set_ylabel(f"{split} seed {seed}")
    axes[row, -1].axis("off")
  axes[0, -1].imshow(color_wheel(SIZE, max_norm))
  axes[0, -1].axis("on")
  axes[0, -1].set_title(f"flow colours (<= {max_norm:.1f} px)", fontsize=8)
  for col, title in enumerate(titles):
    axes[0, col].set_title(title, fontsize=8)
  for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out, dpi=100)
  print(f"wrote {os.path.abspath(out)}")


def _psnr(x, y, mask):
  return -10 * np.log10(np.mean(np.mean((x - y) ** 2, axis=-1)[mask]))


def physics_table():
  """Prints the reblur-vs-blurry agreement, one row per motion scale, as a markdown table."""
  print(f"{SEQUENCES} train sequences x {FRAMES} frames of {SIZE}x{SIZE}, E = 9, tau = 0.5, "
        "3 objects; PSNR in dB over all frames (mean squared error pooled).")
  print("| max_speed | mean / max flow (px) | kept by mask | conv, whole | conv, masked "
        "| warp (8), masked | no blur (sharp), masked |")
  print("|---|---|---|---|---|---|---|")
  for speed in SPEEDS:
    clips = [synthetic.render_sequence(seed, num_frames=FRAMES, height=SIZE, width=SIZE,
                                       max_speed=speed, return_boundaries=True)
             for seed in range(SEQUENCES)]
    stack = lambda key: np.concatenate([c[key] for c in clips])
    sharp, blurry = stack("sharp") / np.float32(255), stack("blurry") / np.float32(255)
    flows = stack("flow_prev"), stack("flow_next")
    away, whole = ~stack("boundary"), np.ones(blurry.shape[:-1], bool)
    conv = np.asarray(blur.reblur_batch(sharp, *flows, tau=0.5, method="conv"))
    warp = np.asarray(blur.reblur_batch(sharp, *flows, tau=0.5, method="warp"))
    norm = np.linalg.norm(np.concatenate(flows), axis=-1)
    print(f"| {speed:g} | {norm.mean():.1f} / {norm.max():.1f} | {away.mean():.0%} "
          f"| {_psnr(conv, blurry, whole):.1f} | {_psnr(conv, blurry, away):.1f} "
          f"| {_psnr(warp, blurry, away):.1f} | {_psnr(sharp, blurry, away):.1f} |")
  start = time.process_time()  # CPU time: stable on a shared machine, and rendering uses one core.
  synthetic.render_sequence(0, num_frames=300, height=SIZE, width=SIZE)
  print(f"rendering 300 frames of {SIZE}x{SIZE} (E = 9, 3 objects): "
        f"{time.process_time() - start:.1f} s of CPU time")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "images",
                                                    "synthetic_data.png"))
  parser.add_argument("--no-table", dest="table", action="store_false",
                      help="only draw the figure")
  args = parser.parse_args()
  draw(args.out)
  if args.table:
    physics_table()


if __name__ == "__main__":
  main()
