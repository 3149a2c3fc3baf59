r"""Test-time adaptation per video, scored against ground truth the adaptation never sees.

  python -m experiments.adaptation --checkpoint=runs/demo/dvd_reblur \
      --dataset=synthetic_blur/study_t7 --split=validation --steps=200
  python -m experiments.adaptation --checkpoint=pretrained/dvd --split=validation --steps=100

Each sequence of `--split` (or each of `--videos`, blurred as `experiments/real_footage.py`
does) is adapted to on its own blurry frames with `adapt.adapt` and the safeguards of the flags
(`deblur --adapt_*`'s, same names and defaults), then deblurred by the starting and by the
returned network. The table gives PSNR of both against the sharp frames, the gain, and what the
safeguards decided; `--trajectories=FILE` also writes, per video, every held-out measurement
(step, held-out L_U and reblur PSNR) with the PSNR of the network measured then, which is how
well held-out L_U tracks quality, and lets other stopping settings be replayed without
re-adapting (`--patience` / `--margin` only read the measurements). Choices are made on the
validation split; the test split and real footage are measured once with the chosen defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
from absl import app
from absl import flags

from experiments import real_footage
from reblur_jax.data import estimated_flows
from reblur_jax.data import pipeline
from reblur_jax.data import synthetic
from reblur_jax.data.builders import synthetic_blur
from reblur_jax.evaluation import adapt
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.evaluation import safeguards as safeguards_lib
from reblur_jax.evaluation import video


def split_videos(dataset: str, split: str, data_dir: str | None
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """`{sequence: (blurry, sharp)}`, each `uint8 [N, H, W, 3]`, from a split's centred clips."""
  source = pipeline.data_source(dataset, split, data_dir)
  frames = {}
  for index in range(len(source)):
    example = source[index]
    name = example["sequence"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    middle = len(example["blurry"]) // 2
    frames.setdefault(name, []).append(
        (int(example["frame"]), example["blurry"][middle], example["sharp"][middle]))
  return {name: tuple(np.stack([f[i] for f in sorted(items, key=lambda f: f[0])])
                      for i in (1, 2)) for name, items in frames.items()}


def mild_videos(count: int, *, frames: int, size: int, exposure: int, max_speed: float,
                linear_light: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """`count` validation scenes rendered as the real videos are blurred: `exposure` consecutive
  frames averaged in linear light per blurry frame (tau 0.5), motion up to `max_speed` pixels per
  blurry frame. Seeds from `VALIDATION_SEED_OFFSET + 100`: other scenes than the split's, the
  validation photos."""
  first = synthetic_blur.VALIDATION_SEED_OFFSET + 100
  videos = {}
  for seed in range(first, first + count):
    video = synthetic.render_sequence(seed, split="validation", num_frames=frames, height=size,
                                      width=size, exposure=exposure, linear_light=linear_light,
                                      max_speed=max_speed)
    videos[f"mild_{seed}"] = (video["blurry"], video["sharp"])
  return videos


def real_videos(paths: Sequence[str], *, max_side: int, max_frames: int, average: int
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  videos = {}
  for path in paths:
    blurry, sharp = real_footage.blur_video(real_footage.load(path, max_side), average)
    videos[os.path.basename(path)] = (blurry[:max_frames], sharp[:max_frames])
  return videos


def restore(module, variables, blurry: np.ndarray) -> np.ndarray:
  fn = networks.deblur_fn(module, variables)
  return np.stack(list(inference.deblur_frames(fn, blurry, module.num_input_frames)))


def gradient_energy(frames: np.ndarray) -> float:
  """Mean absolute horizontal + vertical difference of `uint8` frames, a sharpness reading."""
  frames = frames.astype(np.float32) / 255
  return float(np.abs(np.diff(frames, axis=1)).mean() + np.abs(np.diff(frames, axis=2)).mean())


def run_video(run, module, variables, flow, blurry, sharp, args, flow_source: str,
              linear_light: bool | None, labeled_dataset: str | None) -> dict:
  """Adapts to one video; returns its scores, decision and measurement trajectory."""
  config = adapt.adaptation_config(
      run.config, steps=args.steps, frame_size=blurry.shape[1:3],
      learning_rate=args.learning_rate, batch_size=args.batch_size,
      flow_gradient=args.flow_gradient, flow_source=flow_source, tau=args.tau,
      linear_light=linear_light, labeled_dataset=labeled_dataset, data_dir=args.data_dir,
      alpha=args.alpha)
  safeguards = safeguards_lib.Safeguards(**{name: args[name].value for name in SAFEGUARDS})
  trajectory = []

  def score(measurement, measured):
    restored = restore(module, measured, blurry)
    trajectory.append({**measurement, "psnr": real_footage.score(restored, sharp)[0],
                       "gradient": gradient_energy(restored)})

  clips = video.Clips(blurry, adapt.clip_length(config))
  result = adapt.adapt(config, {"deblur": variables, "flow": flow}, clips,
                       safeguards=safeguards, on_measure=score if args.trajectories else None)
  before = real_footage.score(restore(module, variables, blurry), sharp)[0]
  after = (real_footage.score(restore(module, result.variables, blurry), sharp)[0]
           if result.decision.adapted else before)
  return {"psnr_blurry": real_footage.score(blurry, sharp)[0], "psnr_start": before,
          "psnr_adapted": after, "gain": after - before, "decision": result.decision.describe(),
          "adapted": result.decision.adapted, "kept_step": result.decision.kept_step,
          "trajectory": trajectory}


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  run = networks.restore(args.checkpoint)
  flow_source = args.flow_source or adapt.default_flow_source(
      run.config, flow_network_at_hand=run.flow_network is not None or bool(args.flow_checkpoint))
  if run.flow_network is None and flow_source == "flownets":
    if not args.flow_checkpoint:
      raise app.UsageError(f"{args.checkpoint} has no FlowNetS: pass --flow_checkpoint.")
    run.use_flow(args.flow_checkpoint)
  module, variables, flow = run.deblur_network, run.deblur_variables, run.flow_variables
  # The real videos are averaged in linear light, the mild ones as --mild_linear_light says; a
  # data set's blur is the checkpoint config's (None).
  linear_light = args.linear_light
  if linear_light is None and args.videos:
    linear_light = True
  elif linear_light is None and args.mild:
    linear_light = args.mild_linear_light
  labeled_dataset = ((args.labeled_dataset or adapt.labeled_default(run.config))
                     if args.labeled else None)
  if args.videos:
    videos = real_videos(args.videos, max_side=args.max_side, max_frames=args.max_frames,
                         average=args.average)
  elif args.mild:
    videos = mild_videos(args.mild, frames=args.max_frames, size=args.max_side,
                         exposure=args.average, max_speed=args.mild_max_speed,
                         linear_light=args.mild_linear_light)
  else:
    videos = split_videos(args.dataset, args.split, args.data_dir)
  results = {}
  lines = ["| video | frames | blurry | un-adapted | adapted | gain | safeguards |",
           "|---|--:|--:|--:|--:|--:|---|"]
  for name, (blurry, sharp) in videos.items():
    results[name] = run_video(run, module, variables, flow, blurry, sharp, args, flow_source,
                              linear_light, labeled_dataset)
    r = results[name]
    lines.append(f"| {name} ({blurry.shape[2]}x{blurry.shape[1]}) | {len(blurry)} | "
                 f"{r['psnr_blurry']:.2f} | {r['psnr_start']:.2f} | {r['psnr_adapted']:.2f} | "
                 f"{r['gain']:+.2f} | {r['decision']} |")
    print(lines[-1], flush=True)
  gains = [r["gain"] for r in results.values()]
  lines.append(f"| mean | | | | | {np.mean(gains):+.2f} | worst {min(gains):+.2f} |")
  print("\n".join(lines))
  if args.trajectories:
    with open(args.trajectories, "w") as f:
      json.dump({"flags": {name: args[name].value for name in FLAG_NAMES}, "videos": results},
                f, indent=1)


# The safeguards' flags are named as their fields (deblur's --adapt_<field>).
SAFEGUARDS = tuple(field.name for field in dataclasses.fields(safeguards_lib.Safeguards))
FLAG_NAMES = ("checkpoint", "dataset", "split", "videos", "steps", "learning_rate", "batch_size",
              "flow_gradient", "flow_source", "tau", "linear_light", "mild", "mild_max_speed",
              "mild_linear_light", "max_side", "max_frames", "average", "labeled",
              "labeled_dataset", "alpha", *SAFEGUARDS)


def _define_flags() -> None:
  """Flags, defined only when run as a program."""
  flags.DEFINE_string("checkpoint", None, "Training workdir with a FlowNetS.", required=True)
  flags.DEFINE_string("flow_checkpoint", None, "FlowNetS when the checkpoint has none.")
  flags.DEFINE_string("dataset", "synthetic_blur/study_t7", "Labeled set of the sequences.")
  flags.DEFINE_string("split", "validation", "Its split.")
  flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  flags.DEFINE_list("videos", None, "Sharp video files instead of --dataset (real_footage.py).")
  flags.DEFINE_integer("mild", 0, "Render this many validation scenes blurred like the real "
                       "videos instead of --dataset (mild_videos; --max_side square frames).")
  flags.DEFINE_float("mild_max_speed", 6.0, "Their motion bound, pixels per blurry frame.")
  flags.DEFINE_bool("mild_linear_light", True, "Their frames averaged in linear light, as a "
                    "camera integrates (else in gamma-encoded values, as the study set).")
  flags.DEFINE_integer("max_side", 192, "Real videos: frames are downscaled to this side.")
  flags.DEFINE_integer("max_frames", 16, "Real videos: blurry frames at most.")
  flags.DEFINE_integer("average", 3, "Real videos: sharp frames per blurry frame.")
  flags.DEFINE_integer("steps", 200, "Adaptation steps at most.")
  flags.DEFINE_float("learning_rate", adapt.LEARNING_RATE, "Adam's rate.")
  flags.DEFINE_integer("batch_size", None, "Clips per step (default: the run's).")
  flags.DEFINE_enum("flow_gradient", adapt.FLOW_GRADIENT, ["through", "stop"],
                    "FlowNetS in the reblur loss.")
  flags.DEFINE_enum("flow_source", None, list(estimated_flows.SOURCES),
                    "Flows of the reblur loss (default: adapt.default_flow_source).")
  flags.DEFINE_float("tau", None, "Exposure of the blur model (default: the checkpoint "
                     "config's; 0.5 for the synthetic sets).")
  flags.DEFINE_bool("linear_light", None, "Blur model in linear light (default: yes for "
                    "--videos and linear-light --mild, else the checkpoint config's).")
  flags.DEFINE_bool("labeled", True, "Mix labeled clips into each batch (deblur "
                    "--adapt_labeled); --nolabeled adapts to the video alone.")
  flags.DEFINE_string("labeled_dataset", None, "Their set (default: the checkpoint's).")
  flags.DEFINE_float("alpha", adapt.ALPHA, "Weight of L_U against L_S (deblur --adapt_alpha).")
  for field in dataclasses.fields(safeguards_lib.Safeguards):
    define = flags.DEFINE_integer if field.type == "int" else flags.DEFINE_float
    define(field.name, field.default, f"Safeguards.{field.name} (deblur --adapt_{field.name}).")
  flags.DEFINE_string("trajectories", None, "JSON file for every measurement with its PSNR.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
