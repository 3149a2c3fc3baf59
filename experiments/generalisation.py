r"""How a deblur network generalises: per sequence, by motion speed, and to linear-light blur.

  python -m experiments.generalisation --checkpoints=runs/pretrained/dvd,runs/demo/dvd_reblur

Renders the sequences of a split of the synthetic set exactly as its TFDS builder does (same
seeds, photos and motion), once as built (the blurry frame is the mean of the sub-frames' pixel
values) and once averaged in linear light (gamma 2.2, like GoPro's blur; the networks never saw
it), deblurs every frame with each checkpoint and prints three tables of PSNR / SSIM against the
sharp frames:

- per sequence, with its fastest motion (the largest ground-truth flow, pixels per frame);
- by motion: frames whose fastest motion is within the training split's speed bound against
  frames faster than anything trained on (the `study` test split moves up to 18 pixels per
  frame, training up to 12);
- the linear-light variant, per sequence.

Read it on validation to choose; the test split is for reporting what was chosen.

Where a gain is lost (docs/baselines.md, "Why the baseline gains less on the test split"):
`--max_speed` renders the same scenes with another speed bound (pixels per frame, e.g. the
training's 12 on validation), `--seeds` other scenes of the split (e.g. training photos and
motion the network never saw: `--split=train --seeds=200-211`).

  python -m experiments.generalisation --checkpoints=pretrained/dvd --split=validation --max_speed=12
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import app
from absl import flags

from reblur_jax.data.builders import synthetic_blur
from reblur_jax.evaluation import networks
from reblur_jax.evaluation import scoring


def fastest_motion(video: dict) -> np.ndarray:
  """Per frame, the largest ground-truth flow magnitude to either neighbour: `[N]` pixels."""
  flows = np.concatenate([video["flow_next"], video["flow_prev"]], axis=-1)
  speed = np.linalg.norm(flows.reshape(*flows.shape[:-1], 2, 2), axis=-1)
  return speed.reshape(len(speed), -1).max(axis=-1)


def frame_scores(frames: np.ndarray, sharp: np.ndarray) -> np.ndarray:
  """PSNR and SSIM per frame of `uint8 [N, H, W, 3]` frames: `[2, N]`."""
  psnr, ssim = scoring.scores(frames / np.float32(255), sharp / np.float32(255))
  return np.stack([np.asarray(psnr), np.asarray(ssim)])


def _cell(scores: np.ndarray, mask: np.ndarray | None = None) -> str:
  scores = scores if mask is None else scores[:, mask]
  if not scores.shape[1]:
    return "-"
  return "%.2f / %.4f" % tuple(scores.mean(axis=1))


def measure(runs: dict, config: synthetic_blur.SyntheticConfig, split: str,
            linear_light: bool, seeds: Sequence[int] | None = None,
            max_speed: float | None = None) -> list[dict]:
  """Per sequence of `split`: its name, per-frame fastest motion and `[2, N]` scores of the
  blurry input and of each of `runs` (name -> `networks.Restored`).

  `seeds`: the sequences to render (None: the split's own); `max_speed`: their speed bound in
  pixels per frame (None: the split's, as the builder renders it)."""
  results = []
  seeds = synthetic_blur.sequence_seeds(config)[split] if seeds is None else seeds
  overrides = {} if max_speed is None else {"max_speed": max_speed}
  for seed in seeds:
    video = synthetic_blur.render(config, split, seed, linear_light=linear_light, **overrides)
    scores = {"blurry": frame_scores(video["blurry"], video["sharp"])}
    for name, restored in runs.items():
      scores[name] = frame_scores(restored.deblur(video["blurry"]), video["sharp"])
    results.append({"name": f"{split}_{seed}", "motion": fastest_motion(video),
                    "scores": scores})
  return results


def tables(results: list[dict], linear: list[dict], columns: Sequence[str],
           bound: float) -> str:
  """The three markdown tables of the module docstring."""
  head = " | ".join(columns)
  rule = "--:|" * len(columns)
  out = [f"| sequence | fastest motion (px/frame) | {head} |", f"|---|--:|{rule}"]
  for r in results:
    out.append(f"| {r['name']} | {r['motion'].max():.1f} | "
               + " | ".join(_cell(r["scores"][c]) for c in columns) + " |")
  motion = np.concatenate([r["motion"] for r in results])
  joined = {c: np.concatenate([r["scores"][c] for r in results], axis=1) for c in columns}
  out += ["", f"| frames | count | {head} |", f"|---|--:|{rule}"]
  for label, mask in ((f"fastest motion <= {bound:g} px (trained range)", motion <= bound),
                      (f"fastest motion > {bound:g} px (faster than training)", motion > bound),
                      ("all", np.ones_like(motion, bool))):
    out.append(f"| {label} | {int(mask.sum())} | "
               + " | ".join(_cell(joined[c], mask) for c in columns) + " |")
  out += ["", f"| linear-light blur | fastest motion (px/frame) | {head} |", f"|---|--:|{rule}"]
  for r in linear:
    out.append(f"| {r['name']} | {r['motion'].max():.1f} | "
               + " | ".join(_cell(r["scores"][c]) for c in columns) + " |")
  linear_all = {c: np.concatenate([r["scores"][c] for r in linear], axis=1) for c in columns}
  out.append("| all | | " + " | ".join(_cell(linear_all[c]) for c in columns) + " |")
  return "\n".join(out)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if flags.FLAGS.max_speed is not None and flags.FLAGS.max_speed <= 0:
    raise app.UsageError(f"--max_speed must be positive (pixels per frame), got "
                         f"{flags.FLAGS.max_speed}.")
  split, chosen = flags.FLAGS.split, dict(seeds=_seeds(flags.FLAGS.seeds),
                                          max_speed=flags.FLAGS.max_speed)
  config = synthetic_blur.builder_config(flags.FLAGS.dataset_config)
  runs = {path: networks.restore(path) for path in flags.FLAGS.checkpoints}
  built = measure(runs, config, split, linear_light=config.linear_light, **chosen)
  linear = measure(runs, config, split, linear_light=True, **chosen)
  print(tables(built, linear, ["blurry", *runs], bound=config.max_speed))


def _seeds(text: str | None) -> range | None:
  """`"200-211"` -> `range(200, 212)`; None -> None (the split's own)."""
  if not text:
    return None
  first, _, last = text.partition("-")
  try:
    return range(int(first), int(last or first) + 1)
  except ValueError:
    raise app.UsageError(f"--seeds: expected FIRST-LAST, e.g. 200-211, got {text!r}.") from None


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_list("checkpoints", None, "Training workdirs to compare.", required=True)
  flags.DEFINE_string("dataset_config", "study", "Config of the synthetic_blur builder.")
  flags.DEFINE_enum("split", "validation", ["train", "validation", "test"], "Split to render.")
  flags.DEFINE_string("seeds", None, "Render these sequences instead of the split's, as "
                      "FIRST-LAST (e.g. 200-211: scenes no network trained on).")
  flags.DEFINE_float("max_speed", None, "Render with this speed bound, pixels per frame "
                     "(default: the split's).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
