"""Draws the blur model's kernels (the paper's Fig. 3) into docs/images/blur_kernels.png.

    python docs/scripts/blur_kernels.py [--out docs/images/blur_kernels.png]

Row 1: a real flow's kernel is the bilinear interpolation, in flow space, of the four table
kernels around it (Eq. 9). Row 2: kernels `flow_to_kernel(flow_prev, flow_next)` for a few flow
pairs; the arrows are `tau * flow_next` (red) and `tau * flow_prev` (blue), which the kernel's
two segments must follow. Row 3: a photo blurred by a rotating flow field with both methods.
"""

import argparse

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import skimage.transform

from reblur_jax import blur

R = 16
# (title, flow_prev (u, v) or None, flow_next (u, v), tau)
PAIRS = (
    ("symmetric", (-9.0, -4.0), (9.0, 4.0), 1.0),
    ("asymmetric", (-3.0, 7.0), (11.0, 2.5), 1.0),
    ("asymmetric, tau 0.5", (-3.0, 7.0), (11.0, 2.5), 0.5),
    ("two-frame", None, (8.0, -5.0), 1.0),
    ("beyond max_disp: clipped", (-30.0, 0.0), (24.0, -20.0), 1.0),
)


def show_kernel(ax, kernel, title, arrows=()):
  ax.imshow(kernel, cmap="magma", extent=(-R - 0.5, R + 0.5, R + 0.5, -R - 0.5),
            vmin=0, vmax=max(kernel.max(), 1e-6))
  for (u, v), color in arrows:
    ax.annotate("", xy=(u, v), xytext=(0, 0),
                arrowprops=dict(arrowstyle="->", color=color, lw=1.0, alpha=0.8))
  ax.set_title(title, fontsize=8)
  ax.set_xticks([-R, 0, R])
  ax.set_yticks([-R, 0, R])
  ax.tick_params(labelsize=6)


def interpolation_row(axes):
  """The four table kernels around flow (5.4, 2.7), their weights, and the interpolated kernel."""
  u, v = 5.4, 2.7
  table = blur.kernel_table(R, 1.0)
  u0, v0 = int(np.floor(u)), int(np.floor(v))
  fu, fv = u - u0, v - v0
  corners = [(u0, v0, (1 - fu) * (1 - fv)), (u0 + 1, v0, fu * (1 - fv)),
             (u0, v0 + 1, (1 - fu) * fv), (u0 + 1, v0 + 1, fu * fv)]
  for ax, (ui, vi, w) in zip(axes, corners):
    show_kernel(ax, table[vi + R, ui + R], f"table ({ui}, {vi}) x {w:.2f}")
  kernel = np.asarray(blur.flow_to_kernel(None, np.array([u, v], np.float32)))
  show_kernel(axes[4], kernel, f"flow ({u}, {v}): weighted sum", [((u, v), "red")])


def kernels_row(axes):
  for ax, (title, prev, nxt, tau) in zip(axes, PAIRS):
    flow_prev = None if prev is None else np.array(prev, np.float32)
    kernel = np.asarray(blur.flow_to_kernel(flow_prev, np.array(nxt, np.float32), tau=tau))
    arrows = [(tuple(tau * np.clip(nxt, -R, R)), "red")]
    if prev is not None:
      arrows.append((tuple(tau * np.clip(prev, -R, R)), "deepskyblue"))
    show_kernel(ax, kernel, title, arrows)


def photo_row(axes):
  """A photo under a rotation about its centre: flow_next turns one way, flow_prev the other."""
  size = 160
  sharp = skimage.transform.resize(skimage.data.astronaut(), (size, size),
                                   anti_aliasing=True).astype(np.float32)
  y, x = np.mgrid[:size, :size].astype(np.float32) - (size - 1) / 2
  angle = 0.25  # radians between frames: the corners move beyond max_disp
  flow_next = np.stack([-angle * y, angle * x], axis=-1)
  flow_prev = -0.6 * flow_next  # slower on the way in: the model is asymmetric
  conv = np.asarray(blur.reblur(sharp, flow_prev, flow_next, method="conv"))
  warp = np.asarray(blur.reblur(sharp, flow_prev, flow_next, method="warp", samples=32))
  images = [(sharp, "sharp"), (conv, "conv (flows clipped at 16)"), (warp, "warp, 32 samples"),
            (np.clip(10 * np.abs(conv - warp), 0, 1), "|conv - warp| x 10")]
  for ax, (image, title) in zip(axes, images):
    ax.imshow(np.clip(image, 0, 1))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
  largest = np.abs(flow_next).max(axis=-1)  # conv clips each component to [-R, R]
  axes[4].imshow(largest, cmap="viridis")
  axes[4].contour(largest, levels=[R], colors="white", linewidths=0.8)
  axes[4].set_title(f"max(|u|, |v|) of flow_next (white: {R})", fontsize=8)
  axes[4].axis("off")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="docs/images/blur_kernels.png")
  args = parser.parse_args()
  fig, axes = plt.subplots(3, 5, figsize=(11, 7))
  interpolation_row(axes[0])
  kernels_row(axes[1])
  photo_row(axes[2])
  fig.suptitle("reblur: per-pixel kernels from flows (x right, y down; offsets in pixels)",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(args.out, dpi=110)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
