r"""Where is the reblur signal lost? The latent-image experiment of issue 12.

  python -m experiments.signal_diagnostic --flow_checkpoint=runs/demo/flownets
  python -m experiments.signal_diagnostic --start_checkpoint=runs/demo/dvd_reblur \
      --rows=true,true_model,tvl1 --output=docs/signal_from_network.md

No network is trained. For held-out synthetic frames (the test photos, seeds no data set uses),
the sharp frame `x` itself is optimised with Adam, starting from the blurry frame (or, with
`--start_checkpoint`, from what a trained deblur network restores: how much signal is left once
a network has deblurred), to minimise the
self-supervised loss `MSE(reblur(x, flow_prev, flow_next, tau), blurry)`, and its PSNR against the
true sharp frame is read after fixed numbers of steps. If the blur model with some flows and `tau`
carries deblurring signal, PSNR rises above the blurry input's; the rows differ in one link each:

* the flows: the renderer's true flows; FlowNetS on the blurry frames, fixed; FlowNetS recomputed
  every step from the current estimate (FlowNetS(blurry t+1, x) and FlowNetS(blurry t-1, x): the
  middle frame is `x`, its neighbours stay the blurry frames), with gradients through FlowNetS as
  training has them, or with the flows' gradient stopped; scikit-image's TV-L1 on the blurry
  frames, fixed, as a classical reference;
* `tau`: the data's exposure (0.5: E = D = 9 sub-frames) against the paper's text (1);
* the border: the loss on every pixel, or only where both blur segments stay inside the frame
  (where `reblur` clamps, a real camera saw beyond the border), or only where the renderer says
  the model holds (no occlusion, no layer edge in reach, segments inside the frame), or only
  away from the motion boundaries of the row's own flows (what training can know).

The results are a markdown report (`--output`) with the command that made it.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags

from reblur_jax import blur
from reblur_jax import checkpoint
from reblur_jax import metrics
from reblur_jax import models
from reblur_jax.data import estimated_flows
from reblur_jax.data import synthetic
from reblur_jax.data.builders import synthetic_blur
from reblur_jax.evaluation import networks
from reblur_jax.training import losses

# Seeds of held-out sequences: past every test sequence the synthetic data sets render.
FIRST_SEED = synthetic_blur.TEST_SEED_OFFSET + 200

FlowFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Row:
  """One experiment: which flows drive the blur model, with which `tau` and loss mask.

  Attributes:
    key: short name, for `--rows`.
    flows: "true" | "flownet" (on the blurry frames, fixed) | "flownet_x" (recomputed from `x`
      every step) | "tvl1" (on the blurry frames, fixed).
    tau: "data" (the renderer's exposure) or a number.
    mask: "none" | "inside" (both segments end inside the frame) | "model" (the renderer's
      pixels where the model holds) | "smooth_motion" (away from motion boundaries of the row's
      fixed flows, `blur.smooth_motion`: what training can know without ground truth).
    stop_gradient: "flownet_x" only: stop the flows' gradient, so `x` moves only through the
      blur model's image input.
    label: how the report names it.
  """
  key: str
  flows: str
  label: str
  tau: str | float = "data"
  mask: str = "none"
  stop_gradient: bool = False


ROWS = (
    Row("true", "true", "true flows, tau matched"),
    Row("true_tau1", "true", "true flows, tau = 1 (the paper's text)", tau=1.0),
    Row("flownet", "flownet", "FlowNetS on the blurry frames, fixed"),
    Row("flownet_x", "flownet_x", "FlowNetS recomputed on x each step, gradients through it"),
    Row("flownet_x_stop", "flownet_x", "FlowNetS recomputed on x each step, flows stop-gradient",
        stop_gradient=True),
    Row("true_inside", "true", "true flows, tau matched, loss on in-frame segments only",
        mask="inside"),
    Row("true_model", "true", "true flows, tau matched, loss where the model holds",
        mask="model"),
    Row("tvl1", "tvl1", "TV-L1 (scikit-image) on the blurry frames, fixed"),
    Row("tvl1_smooth", "tvl1", "TV-L1 on the blurry frames, fixed, loss away from its motion "
        "boundaries", mask="smooth_motion"),
)
FLOWNET_ROWS = ("flownet", "flownet_x", "flownet_x_stop")
# The command's defaults (its flags), which `make reproduce` runs too.
DEFAULTS = {"sequences": 4, "frames": 1, "size": 96, "max_speed": 18.0, "learning_rate": 1e-3,
            "steps": (0, 10, 30, 100, 200, 400)}


@dataclasses.dataclass(frozen=True)
class Frames:
  """The frames to restore and what each experiment needs of them, float32 in [0, 1].

  `blurry`, `sharp` `[N, H, W, 3]`; `blurry_prev`, `blurry_next` the blurry neighbours; true
  `flow_prev`, `flow_next` `[N, H, W, 2]`; `model_holds` `[N, H, W]` bool; `tau` of the data;
  `start` `[N, H, W, 3]`, where the optimisation starts (None: the blurry frames).
  """
  blurry: np.ndarray
  sharp: np.ndarray
  blurry_prev: np.ndarray
  blurry_next: np.ndarray
  flow_prev: np.ndarray
  flow_next: np.ndarray
  model_holds: np.ndarray
  tau: float
  start: np.ndarray | None = None


def render_frames(*, sequences: int, frames_per_sequence: int, size: int, max_speed: float,
                  first_seed: int = FIRST_SEED,
                  restore: Callable[[np.ndarray], np.ndarray] | None = None) -> Frames:
  """Held-out test-split frames: the `frames_per_sequence` inner frames of `sequences` videos.

  `restore` (`uint8 [T, H, W, 3]` video -> its restored frames, `uint8`) sets `Frames.start` to
  what it restores of each rendered video (replicate-padded at the ends of the rendered frames).
  """
  parts = []
  for seed in range(first_seed, first_seed + sequences):
    video = synthetic.render_sequence(
        seed, split="test", num_frames=frames_per_sequence + 2, height=size, width=size,
        max_speed=max_speed, return_boundaries=True)
    blurry = video["blurry"].astype(np.float32) / 255.0
    inner = slice(1, -1)
    parts.append(dict(
        blurry=blurry[inner], sharp=video["sharp"][inner].astype(np.float32) / 255.0,
        blurry_prev=blurry[:-2], blurry_next=blurry[2:], flow_prev=video["flow_prev"][inner],
        flow_next=video["flow_next"][inner], model_holds=~video["boundary"][inner],
        tau=video["tau"]))
    if restore is not None:
      parts[-1]["start"] = restore(video["blurry"])[inner].astype(np.float32) / 255.0
  stacked = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key != "tau"}
  return Frames(tau=parts[0]["tau"], **stacked)


# ----------------------------------------------------------------------------- flows


def flownet_fn(module, variables) -> FlowFn:
  """FlowNetS as `(first [N, H, W, 3], second) -> flow [N, H, W, 2]`, `first(p) ~= second(p +
  flow(p))`: the pair (t+1, t) gives `flow_next`, (t-1, t) `flow_prev`, as in training."""
  return functools.partial(module.apply, variables)


def load_flownet(path: str) -> tuple[FlowFn, str]:
  """FlowNetS from a training workdir or a variables directory, and its description.

  A variables directory holds no config, so the width is read from the first convolution
  (64 channels at width 1).

  Raises:
    FileNotFoundError, checkpoint.ModelMismatchError: nothing, or not a FlowNetS, at `path`.
  """
  path = os.path.abspath(os.path.expanduser(path))
  trained = "a variables directory"
  if checkpoint.is_run(path):
    run = checkpoint.restore_run(path)
    variables = run.variables("flow")
    trained = f"step {run.step} of its training run"
  else:
    variables = checkpoint.load_variables(path)
  try:
    width = variables["params"]["conv1"]["kernel"].shape[-1] / 64
  except (KeyError, TypeError, AttributeError, IndexError) as e:
    raise checkpoint.ModelMismatchError(f"{path} does not hold a FlowNetS network (no conv1 "
                                        "kernel): pass a flow checkpoint.") from e
  module = models.create("flownets", width=width)
  model = checkpoint.describe("flownets", {"width": width})
  checkpoint.check_variables(module, variables, source=path, model=model)
  return flownet_fn(module, jax.device_put(variables)), f"{model}, {trained}"


def fixed_flows(frames: Frames, source: str, flow_fn: FlowFn | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """`(flow_prev, flow_next)` `[N, H, W, 2]` of a fixed source: "true", "flownet" or "tvl1"."""
  if source == "true":
    return frames.flow_prev, frames.flow_next
  if source == "flownet":
    flows = jax.jit(flow_fn)(np.concatenate([frames.blurry_prev, frames.blurry_next]),
                             np.concatenate([frames.blurry, frames.blurry]))
    flow_prev, flow_next = np.split(np.asarray(flows), 2)
    return flow_prev, flow_next
  if source == "tvl1":
    tvl1 = estimated_flows.tvl1
    return (np.stack([tvl1(p, b) for p, b in zip(frames.blurry_prev, frames.blurry)]),
            np.stack([tvl1(n, b) for n, b in zip(frames.blurry_next, frames.blurry)]))
  raise ValueError(f"unknown fixed flow source {source!r}.")


def endpoint_errors(flow_prev, flow_next, frames: Frames) -> tuple[float, float]:
  """Mean end-point error in pixels of `(flow_prev, flow_next)` against the true flows."""
  return tuple(float(np.mean(np.linalg.norm(np.asarray(f) - t, axis=-1)))
               for f, t in ((flow_prev, frames.flow_prev), (flow_next, frames.flow_next)))


# ----------------------------------------------------------------------------- the experiment


def loss_mask(frames: Frames, mask: str, tau: float, flows=None) -> np.ndarray:
  """Per-pixel weights `[N, H, W, 1]` of the loss (module docstring, "the border"): "model" the
  renderer's oracle, the others `losses.reblur_mask`'s, "inside" of the true flows (the segments
  the camera integrated), "smooth_motion" of `flows`, the row's fixed `(flow_prev, flow_next)`."""
  if mask == "model":
    return frames.model_holds[..., None].astype(np.float32)
  if mask == "smooth_motion" and flows is None:
    raise ValueError("mask 'smooth_motion' without fixed flows: pass the row's flows.")
  prev, next_ = flows if mask == "smooth_motion" else (frames.flow_prev, frames.flow_next)
  weights = losses.reblur_mask(mask, prev, next_, tau)
  if weights is None:
    return np.ones(frames.blurry.shape[:3] + (1,), np.float32)
  return np.asarray(weights, np.float32)


def run_row(row: Row, frames: Frames, *, steps: Sequence[int], learning_rate: float,
            flow_fn: FlowFn | None = None) -> dict:
  """Optimises `x` for `max(steps)` steps; PSNR to sharp (dB, mean over frames) at each of `steps`.

  Returns:
    `{"psnr": {step: dB}, "epe": (prev, next) px of the flows used (for "flownet_x", at the
    start and end: a pair of pairs), "loss": the reblur loss at the start and the end, "tau":
    tau, "seconds": wall}`.
  """
  tau = frames.tau if row.tau == "data" else float(row.tau)
  fixed = None
  if row.flows != "flownet_x":
    fixed = tuple(jnp.asarray(f) for f in fixed_flows(frames, row.flows, flow_fn))
  mask = jnp.asarray(loss_mask(frames, row.mask, tau, fixed))
  blurry = jnp.asarray(frames.blurry)
  neighbours = jnp.concatenate([frames.blurry_prev, frames.blurry_next])
  reblur = functools.partial(blur.reblur_batch, tau=tau, method="conv")

  if row.flows == "flownet_x":
    if flow_fn is None:
      raise ValueError(f"row {row.key!r} needs FlowNetS.")

    def flows_of(x):
      flows = flow_fn(neighbours, jnp.concatenate([x, x]))
      if row.stop_gradient:
        flows = jax.lax.stop_gradient(flows)
      return tuple(jnp.split(flows, 2))
  else:
    flows_of = lambda x: fixed

  def loss_and_flows(x):
    flows = flows_of(x)
    reblurred = reblur(x, *flows)
    return losses.mse(reblurred, blurry, mask), flows

  optimizer = optax.adam(learning_rate)

  @jax.jit
  def step(x, opt_state):
    grad, _ = jax.grad(loss_and_flows, has_aux=True)(x)
    updates, opt_state = optimizer.update(grad, opt_state)
    return optax.apply_updates(x, updates), opt_state

  # Compiled once, like `step`: eagerly, FlowNetS would compile layer by layer.
  evaluate = jax.jit(loss_and_flows)

  def score(x):
    return float(jnp.mean(metrics.psnr(jnp.clip(x, 0.0, 1.0), jnp.asarray(frames.sharp))))

  start = time.perf_counter()
  x = blurry if frames.start is None else jnp.asarray(frames.start)
  opt_state = optimizer.init(x)
  psnr = {0: score(x)} if 0 in steps else {}
  loss_start, flows_start = evaluate(x)
  for i in range(1, max(steps) + 1):
    x, opt_state = step(x, opt_state)
    if i in steps:
      psnr[i] = score(x)
  loss_end, flows_end = evaluate(x)
  epe = endpoint_errors(*flows_start, frames)
  if row.flows == "flownet_x":
    epe = (epe, endpoint_errors(*flows_end, frames))
  return {"psnr": psnr, "epe": epe, "loss": (float(loss_start), float(loss_end)), "tau": tau,
          "seconds": time.perf_counter() - start}


def run(rows: Sequence[Row], frames: Frames, *, steps: Sequence[int], learning_rate: float,
        flow_fn: FlowFn | None = None, log: Callable[[str], None] = lambda _: None) -> dict:
  """`run_row` for each row: `{row.key: result}`."""
  results = {}
  for row in rows:
    results[row.key] = run_row(row, frames, steps=steps, learning_rate=learning_rate,
                               flow_fn=flow_fn)
    log(f"{row.key}: " + " ".join(f"{k}:{v:.2f}" for k, v in results[row.key]["psnr"].items())
        + f" ({results[row.key]['seconds']:.0f} s)")
  return results


def measure(rows: Sequence[Row], settings: Mapping[str, Any], *, flow_fn: FlowFn | None = None,
            restore: Callable[[np.ndarray], np.ndarray] | None = None,
            log: Callable[[str], None] = lambda _: None) -> tuple[Frames, dict]:
  """Renders the frames `settings` (`DEFAULTS`' keys) describe and runs `rows` on them: the
  frames and `run`'s results. `restore`: as in `render_frames`."""
  frames = render_frames(sequences=settings["sequences"], frames_per_sequence=settings["frames"],
                         size=settings["size"], max_speed=settings["max_speed"], restore=restore)
  return frames, run(rows, frames, steps=settings["steps"],
                     learning_rate=settings["learning_rate"], flow_fn=flow_fn, log=log)


# ----------------------------------------------------------------------------- the report


def _epe_cell(epe) -> str:
  if isinstance(epe[0], (tuple, list)):  # Lists once through JSON.
    return f"{_epe_cell(epe[0])} -> {_epe_cell(epe[1])}"
  return f"{epe[0]:.2f} / {epe[1]:.2f}"


def table(rows: Sequence[dict], steps: Sequence[int]) -> list[str]:
  """The markdown table: one row per `{"label": str, **run_row's result}` (also as read back
  from JSON, where the steps of `psnr` are strings)."""
  steps = sorted(steps)
  header = ["flows used by the blur model", "tau", "EPE prev / next (px)", "L_U x 1e4"]
  header += [f"PSNR @ {s}" for s in steps]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for row in rows:
    psnr = sorted((int(s), v) for s, v in row["psnr"].items())
    best = max(v for _, v in psnr)
    cells = [row["label"], f"{row['tau']:g}", _epe_cell(row["epe"]),
             " -> ".join(f"{1e4 * v:.2f}" for v in row["loss"])]
    cells += [f"**{v:.2f}**" if v == best and s else f"{v:.2f}" for s, v in psnr]
    lines.append("| " + " | ".join(cells) + " |")
  return lines


def markdown(rows: Sequence[Row], results: dict, frames: Frames, *, steps: Sequence[int],
             command: str, flow_model: str | None, setup: str,
             start: str = "the blurry frame") -> str:
  """The report: setup, the table, the command; `start` says what `x` starts from."""
  speed = np.linalg.norm(np.concatenate([frames.flow_prev, frames.flow_next]), axis=-1)
  lines = table([{"label": row.label, **results[row.key]} for row in rows], steps)
  return "\n".join([
      "# Signal diagnostic: where the reblur signal is lost",
      "",
      "The latent-image experiment of issue 12 (`experiments/signal_diagnostic.py`): the sharp "
      f"frame `x` is optimised directly with Adam, starting from {start}, to minimise "
      "`MSE(reblur(x, flow_prev, flow_next, tau), blurry)` (`reblur_jax.blur.reblur`, `conv`, "
      "R = 16); the table gives its PSNR (dB, whole frame, mean over frames) against the true "
      f"sharp frame after each number of steps (step 0: {start}; bold: the row's best). "
      "No network is trained, so each row isolates one link of the self-supervised loss.",
      "",
      setup,
      f"True motion: mean {speed.mean():.1f} px, 95th percentile {np.percentile(speed, 95):.1f} px "
      "per frame interval (flows to both neighbours). EPE is the mean end-point error of the "
      "flows the row uses against the true ones (for flows recomputed on `x`: at the first "
      "step -> after the last). L_U is the loss being minimised (masked where the row says so), "
      "at the first and the last step.",
      f"FlowNetS: {flow_model or 'not used'}.",
      "",
      *lines,
      "",
      "Rows: *fixed* flows are computed once on the blurry frames (FlowNetS on the pairs (t-1, t) "
      "and (t+1, t), as training pairs them; TV-L1: `skimage.registration.optical_flow_tvl1` on "
      "grey frames, its `(row, col)` flow swapped to `(x, y)`). *Recomputed on x*: every step "
      "FlowNetS sees (blurry t-1, x) and (blurry t+1, x), the middle frame being the estimate "
      "and the neighbours staying blurry; with gradients through FlowNetS (what training does "
      "today) `x` can lower the loss by changing the flows, with the stop-gradient only through "
      "the image. *In-frame segments*: the loss only where both segments `p + s tau flow` stay "
      "inside the frame (`reblur` clamps at the border, the camera saw beyond it). *Where the "
      "model holds*: not the renderer's `boundary` pixels (occlusions, layer edges within reach "
      "of a segment, segments leaving the frame). *Away from its motion boundaries*: not within "
      "2 px of a pixel whose flow differs from a neighbour's by 1 px or more "
      "(`blur.smooth_motion`, training's `reblur_mask=\"smooth_motion\"`), known without "
      "ground truth. PSNR is always over the whole frame.",
      "",
      "Made by",
      "",
      f"    {command}",
      "",
  ])


# ----------------------------------------------------------------------------- command line


def _fail(message: str):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def _parse_args() -> tuple[list[Row], list[int]]:
  by_key = {row.key: row for row in ROWS}
  unknown = [key for key in flags.FLAGS.rows if key not in by_key]
  if unknown or not flags.FLAGS.rows:
    _fail(f"--rows has unknown rows {unknown}; expected a comma-separated list of "
          f"{sorted(by_key)}.")
  try:
    steps = sorted({int(s) for s in flags.FLAGS.steps})
  except ValueError:
    steps = []
  if not steps or steps[0] < 0 or steps[-1] < 1:
    _fail(f"--steps={','.join(flags.FLAGS.steps)} is not a list of step counts; expected integers "
          ">= 0, at least one > 0, e.g. --steps=0,30,100.")
  for name in ("sequences", "frames"):
    if flags.FLAGS[name].value < 1:
      _fail(f"--{name}={flags.FLAGS[name].value} must be >= 1.")
  if flags.FLAGS.size < 16:
    _fail(f"--size={flags.FLAGS.size} is too small; expected >= 16 pixels, e.g. --size=192.")
  if not flags.FLAGS.learning_rate > 0 or not flags.FLAGS.max_speed > 0:
    _fail("--learning_rate and --max_speed must be > 0.")
  rows = [by_key[key] for key in flags.FLAGS.rows]
  if any(row.key in FLOWNET_ROWS for row in rows) and not flags.FLAGS.flow_checkpoint:
    _fail("the FlowNetS rows need --flow_checkpoint=<a flow training workdir, e.g. "
          "runs/demo/flownets, or a variables directory>; or leave them out with --rows.")
  return rows, steps


def main(argv):
  del argv
  rows, steps = _parse_args()
  flow_fn, flow_model = None, None
  if any(row.key in FLOWNET_ROWS for row in rows):
    try:
      flow_fn, flow_model = load_flownet(flags.FLAGS.flow_checkpoint)
    except (FileNotFoundError, checkpoint.ModelMismatchError) as e:
      _fail(str(e))
    flow_model = f"{flow_model} from `{flags.FLAGS.flow_checkpoint}`"
  restore, start = None, "the blurry frame"
  if flags.FLAGS.start_checkpoint:
    try:
      network = networks.restore(flags.FLAGS.start_checkpoint)
    except (OSError, ValueError) as e:  # No run there, or one that does not restore.
      _fail(str(e).splitlines()[0])
    restore = network.deblur
    start = (f"what {network.model} of `{flags.FLAGS.start_checkpoint}` (step {network.step}) "
             "restores of the blurry frames")
  settings = {**{key: getattr(flags.FLAGS, key) for key in DEFAULTS}, "steps": steps}
  frames, results = measure(rows, settings, flow_fn=flow_fn, restore=restore,
                            log=lambda line: print(line, flush=True))
  last_seed = FIRST_SEED + flags.FLAGS.sequences - 1
  args = flags.FLAGS
  setup = (f"Frames: {len(frames.blurry)}, {args.frames} from each of {args.sequences} "
           f"held-out test-split videos (`render_sequence` seeds {FIRST_SEED}-{last_seed}, "
           f"photos unseen in training), {args.size}x{args.size}, E = D = 9 sub-frames "
           f"(tau = {frames.tau:g}), motion bound {args.max_speed:g} px per frame (the study's "
           f"test split has 18); Adam, learning rate {args.learning_rate:g}.")
  command = "python -m experiments.signal_diagnostic " + " ".join(sys.argv[1:])
  report = markdown(rows, results, frames, steps=steps, command=command.strip(),
                    flow_model=flow_model, setup=setup, start=start)
  print(report)
  os.makedirs(os.path.dirname(os.path.abspath(flags.FLAGS.output)), exist_ok=True)
  with open(flags.FLAGS.output, "w") as f:
    f.write(report)


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_string(
      "flow_checkpoint", None, "FlowNetS for the FlowNetS rows: a training workdir (e.g. of "
      "configs/flownets_pretrain.py) or a variables directory.")
  flags.DEFINE_string(
      "start_checkpoint", None, "A deblur training workdir: x starts from what its network "
      "restores of the blurry frames (each rendered video deblurred whole) instead of from them.")
  flags.DEFINE_list("rows", [row.key for row in ROWS], "Rows to run, of: "
                    + ", ".join(row.key for row in ROWS) + ".")
  flags.DEFINE_list("steps", [str(step) for step in DEFAULTS["steps"]],
                    "Adam steps after which PSNR is read; 0 is the blurry input.")
  flags.DEFINE_float("learning_rate", DEFAULTS["learning_rate"], "Adam's learning rate on x.")
  flags.DEFINE_integer("sequences", DEFAULTS["sequences"], "Held-out test-split videos.")
  flags.DEFINE_integer("frames", DEFAULTS["frames"], "Frames restored per video.")
  flags.DEFINE_integer("size", DEFAULTS["size"], "Frame side, pixels (96: the study's frames).")
  flags.DEFINE_float("max_speed", DEFAULTS["max_speed"], "Motion bound, pixels per frame "
                     "interval (18: the study's test split).")
  flags.DEFINE_string("output", "docs/signal_diagnostic.md", "Where the report goes.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
