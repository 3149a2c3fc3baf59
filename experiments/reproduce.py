r"""Tests the paper's four claims at CPU scale and writes docs/results.md: `make reproduce`.

  python -m experiments.reproduce --workdir=runs/reproduce               # 2 CPU cores, ~47 min
  python -m experiments.reproduce --workdir=runs/reproduce_gpu --scale=gpu  # full-width networks

The study, every setting fixed before the first run (nothing is tuned on the test ground truth):

1. FlowNetS and the supervised DVD and DeblurGAN baselines: at `--scale=cpu` the thin networks
   shipped in `pretrained/` (`make pretrained` trains them on the synthetic train split, choosing
   on validation); at `--scale=gpu` they are trained here on the train split (S). FlowNetS's
   end-point error on the test split is reported.
2. Each baseline is fine-tuned for its `finetune_steps` with `L = L_S + alpha * L_U` at the scale's
   settings (`--scale=cpu`: the configs' `:cpu` variant, what `make demo` runs: for DVD, L_U's
   flows from TV-L1 on the blurry frames, alpha 3, Adam 1e-3, chosen on the validation split;
   `--scale=gpu`: the paper's FlowNetS, alpha 0.1, Adam 1e-4), S = the labeled set the baseline
   last trained on, U = the blurry frames of the test split (as the paper fine-tunes on its test
   videos), and scored on the test split's sharp frames (Table 2). Same steps with alpha = 0 is
   the control that separates the reblur signal from training longer; where the method is not
   the paper's, the paper's settings and their control are run too. Ablations: warp vs conv
   blur model (Table 3), 2 vs 3 frames (Table 5), tau = 1 (the paper's) vs 0.5 (the synthetic
   camera's true exposure).
3. DeblurGAN-Reblur fine-tuned on each of 5 test frames alone vs on the 5 together (Table 4).
4. The signal diagnostic (`experiments/signal_diagnostic.py` at its defaults, the study's
   FlowNetS): which link of the reblur loss loses the deblurring signal.

The test split differs from training as real footage does: other photos, and motion up to 18
pixels per frame against 12 (`synthetic_blur/study`). Rerunning the command resumes: finished
training runs are restored, finished measurements read from `<workdir>/results.json`. A run in
the workdir started with other settings than today's is an `error:` before any work (use a new
--workdir); one that ran for fewer steps resumes to today's and is measured again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
from absl import app
from absl import flags
from absl import logging
# A Figure draws to files without pyplot, so no backend (global state) is chosen here.
from matplotlib.figure import Figure
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from configs import deblurgan_reblur
from configs import deblurgan_supervised
from configs import dvd_reblur
from configs import dvd_supervised
from configs import flownets_pretrain
from experiments import results_report
from experiments import signal_diagnostic as diagnostic
from reblur_jax import checkpoint
from reblur_jax.data import pipeline
from reblur_jax.data import prepare
from reblur_jax.evaluation import adapt
from reblur_jax.evaluation import scoring
from reblur_jax.evaluation import inference
from reblur_jax.evaluation import networks
from reblur_jax.training import sharding
from reblur_jax.training import train
from reblur_jax.training import validation
from reblur_jax.training import variants


@dataclasses.dataclass(frozen=True)
class Scale:
  """How big the study is. Widths multiply every network's channels (1.0 = the original).
  `crop_size` is the training crops' side (pixels); a variant's fine-tuning keeps its own.

  `variant` names the configs' variant whose fine-tuning settings are the method ("cpu": what
  `make demo` runs, chosen on validation; "": the paper's). `start` is a directory of trained
  FlowNetS / DVD / DeblurGAN variables to start from (`make pretrained`'s `pretrained/`); empty,
  the study first trains them here, for `flow_steps` / `baseline_steps` at `learning_rates`.
  """
  dataset: str
  width: float
  crop_size: int
  batch_size: int
  variant: str
  finetune_steps: dict[str, int]  # Per deblur network ("dvd", "deblurgan").
  adapt_steps: int
  curve_points: int  # Evaluations along each fine-tuning, for the PSNR curve.
  start: str = ""
  learning_rates: dict[str, float] = dataclasses.field(default_factory=dict)
  flow_steps: int = 0
  baseline_steps: int = 0


SCALES = {
    "cpu": Scale(dataset="synthetic_blur/study_t7", width=0.25, crop_size=64, batch_size=8,
                 variant="cpu", finetune_steps={"dvd": 400, "deblurgan": 200}, adapt_steps=100,
                 curve_points=5,
                 start="pretrained"),
    "gpu": Scale(dataset="synthetic_blur/study_t7", width=1.0, crop_size=96, batch_size=16,
                 variant="", finetune_steps={"dvd": 200, "deblurgan": 200}, adapt_steps=200,
                 curve_points=10,
                 learning_rates={"flownets": 1e-4, "dvd": 1e-3, "deblurgan": 1e-3},
                 flow_steps=20000, baseline_steps=30000),
}
TABLE4_IMAGES = 5

# Fine-tuning runs: name -> (network, config overrides). The first of each network is the method.
FINETUNES = {
    "dvd_reblur": ("dvd", {}),
    "dvd_alpha0": ("dvd", {"alpha": 0.0}),
    "dvd_warp": ("dvd", {"blur_model": "warp"}),
    "dvd_2frames": ("dvd", {"frames": 2}),
    "dvd_tau1": ("dvd", {"tau": 1.0}),
    "deblurgan_reblur": ("deblurgan", {}),
    "deblurgan_alpha0": ("deblurgan", {"alpha": 0.0}),
    "deblurgan_warp": ("deblurgan", {"blur_model": "warp"}),
}
# Table 3's runs, whose steps are timed alone, `TIMED_STEPS` each after the compiling one.
TIMED = ("dvd_reblur", "dvd_warp", "deblurgan_reblur", "deblurgan_warp")
TIMED_STEPS = 20
# The paper's fine-tuning and its control, where a scale's method differs from it.
PAPER = {"flow_source": "flownets", "alpha": 0.1, "learning_rate": 1e-4, "reblur_mask": "none"}
PAPER_FINETUNES = {
    "dvd_paper": ("dvd", PAPER),
    "dvd_paper_alpha0": ("dvd", {**PAPER, "alpha": 0.0}),
}
# Recorded with each fine-tuning's measurements: what the report says about how it ran.
RECORDED = ("flow_source", "alpha", "learning_rate", "blur_model", "frames", "tau",
            "labeled_dataset", "reblur_mask", "crop_size")
SUPERVISED = {"dvd": dvd_supervised, "deblurgan": deblurgan_supervised}
REBLUR = {"dvd": dvd_reblur, "deblurgan": deblurgan_reblur}


# ----------------------------------------------------------------------------- configs


def _scaled(config: ml_collections.ConfigDict, scale: Scale, *, steps: int, unlabeled: bool,
            curve_points: int = 1) -> ml_collections.ConfigDict:
  """`config` on the study's data (S: train, U and evaluation: test) at `scale`."""
  for group in ("labeled", "unlabeled", "eval"):
    config[f"{group}_dataset"] = scale.dataset
  config.labeled_split, config.unlabeled_split, config.eval_split = "train", "test", "test"
  config.unlabeled_fraction = 0.5 if unlabeled else 0.0
  config.eval_batch_size, config.num_eval_batches = 8, -1
  return variants.short_run(
      config, steps=steps, width=scale.width, crop_size=scale.crop_size,
      batch_size=scale.batch_size, log_every=max(1, steps // 20),
      eval_every=max(1, steps // curve_points), checkpoint_every=max(1, steps // 4))


def flow_config(scale: Scale) -> ml_collections.ConfigDict:
  config = _scaled(flownets_pretrain.get_config(), scale, steps=scale.flow_steps, unlabeled=False)
  config.learning_rate = scale.learning_rates["flownets"]
  return config


def baseline_config(network: str, scale: Scale) -> ml_collections.ConfigDict:
  config = _scaled(SUPERVISED[network].get_config(), scale, steps=scale.baseline_steps,
                   unlabeled=False)
  config.learning_rate = scale.learning_rates[network]
  return config


def finetunes(scale: Scale) -> dict[str, tuple[str, dict[str, Any]]]:
  """The fine-tuning runs of the study at `scale` (`FINETUNES`, plus the paper's if it differs)."""
  return {**FINETUNES, **(PAPER_FINETUNES if scale.variant else {})}


def finetune_config(name: str, scale: Scale, workdir: str) -> ml_collections.ConfigDict:
  network, overrides = finetunes(scale)[name]
  config = REBLUR[network].get_config(scale.variant)
  # S is what the baseline last trained on: the config's set for shipped networks, the study's
  # for baselines trained here.
  labeled, crop_size = config.labeled_dataset, config.crop_size
  config = _scaled(config, scale, steps=scale.finetune_steps[network], unlabeled=True,
                   curve_points=scale.curve_points)
  if scale.start:
    config.labeled_dataset = labeled
  if scale.variant:  # The variant's crops, chosen on validation with the rest of its method.
    config.crop_size = crop_size
  config.init_checkpoint = _start(scale, workdir, network)
  config.flow_init_checkpoint = _start(scale, workdir, "flownets")
  config.update(overrides)
  return config


def _start(scale: Scale, workdir: str, network: str) -> str:
  """The variables a network starts its fine-tuning from: shipped, or trained by this study."""
  if scale.start:
    return os.path.join(scale.start, network)
  run, entry = ("flownets", "flow") if network == "flownets" else (f"{network}_baseline",
                                                                   "deblur")
  return os.path.join(workdir, run, train.VARIABLES_DIR, entry)


# ----------------------------------------------------------------------------- measurements


def _scalars(run_dir: str, tag: str) -> list[tuple[int, float]]:
  """`(step, value)` of a TensorBoard scalar a run wrote (clu writes them as tensors)."""
  events = event_accumulator.EventAccumulator(run_dir, size_guidance={"tensors": 0})
  events.Reload()
  by_step = {e.step: float(tensor_util.make_ndarray(e.tensor_proto))
             for e in events.Tensors(tag)}
  return sorted(by_step.items())


def pretrain_flow(scale: Scale, workdir: str) -> dict[str, Any]:
  """Test end-point error (px) of FlowNetS: the shipped one's, or before and after training it."""
  if scale.start:  # Only evaluated: the run length is not used.
    config = _scaled(flownets_pretrain.get_config(), scale, steps=1, unlabeled=False)
    config.flow_init_checkpoint = _start(scale, workdir, "flownets")
    return {"epe": train.evaluate(config)["epe"]}
  run_dir = os.path.join(workdir, "flownets")
  train.train_and_evaluate(flow_config(scale), run_dir)
  epe = _scalars(run_dir, "eval/epe")
  return {"epe_before": epe[0][1], "epe": epe[-1][1]}


def train_baseline(network: str, scale: Scale, workdir: str) -> dict[str, Any]:
  run_dir = os.path.join(workdir, f"{network}_baseline")
  train.train_and_evaluate(baseline_config(network, scale), run_dir)
  return {"psnr_test": _scalars(run_dir, "eval/psnr")[-1][1]}


def finetune(name: str, scale: Scale, workdir: str) -> dict[str, Any]:
  """Fine-tunes, then scores baseline and result frame by frame on the test split."""
  run_dir = os.path.join(workdir, name)
  config = finetune_config(name, scale, workdir)
  train.train_and_evaluate(config, run_dir)
  report = scoring.score_checkpoint(None, run_dir, timing_size=None, num_grids=0)
  entry, = report["datasets"]
  return {"mean": entry["mean"], "per_frame": entry["per_frame"],
          "curve": _scalars(run_dir, "eval/psnr"),
          "settings": {field: config[field] for field in RECORDED}}


def time_finetune_step(name: str, scale: Scale, workdir: str) -> float:
  """Seconds of one training step of fine-tuning `name` on its first batch, the fastest of
  `TIMED_STEPS`, the step alone (`train.time_step`): the runs' wall time also holds the input
  pipeline, evaluations and checkpoints, which would swamp Table 3's difference."""
  mesh, data, run = train.set_up(finetune_config(name, scale, workdir))
  batch = sharding.global_batch(next(data.train_iterator()), mesh)
  return train.time_step(run, batch, steps=TIMED_STEPS)[1]


def loss_balance(run_dir: str) -> dict[str, float]:
  """The two loss terms at the first and last logged fine-tuning steps, and the reblur PSNR.

  Says how much the self-supervised term weighs in the gradient (`alpha * L_U` against `L_S`).
  """
  terms = {name: _scalars(run_dir, f"train/{name}")
           for name in ("loss_supervised", "loss_reblur", "psnr_reblur")}
  return {f"{name}_{when}": series[index][1] for name, series in terms.items()
          for when, index in (("first", 0), ("last", -1))}


def group_vs_single(scale: Scale, workdir: str) -> dict[str, Any]:
  """Table 4: DeblurGAN-Reblur adapted to each of 5 test frames alone, and to all 5 at once.

  Only the blurry frames are adapted to (U alone, no labeled clips); each adaptation runs
  `adapt_steps`, so the five single-image runs together take five times the group's steps.
  """
  config = finetune_config("deblurgan_reblur", scale, workdir)
  test = pipeline.data_source(config.eval_dataset, config.eval_split, config.data_dir or None)
  chosen = [int(i) for i in np.linspace(0, len(test) - 1, TABLE4_IMAGES + 2)[1:-1].round()]
  config = adapt.adaptation_config(config, steps=scale.adapt_steps,
                                   frame_size=np.asarray(test[0]["blurry"]).shape[1:3],
                                   learning_rate=adapt.PAPER_LEARNING_RATE)
  module = networks.create_deblur(config)
  start = {"deblur": checkpoint.load_variables(config.init_checkpoint),
           "flow": checkpoint.load_variables(config.flow_init_checkpoint)}
  blurry_only = [{"blurry": np.asarray(test[i]["blurry"])} for i in chosen]

  def scores(variables, indices):
    return [_score(module, variables, test[i]) for i in indices]

  # The paper's setting: every given clip, all steps, no safeguards.
  group = adapt.adapt(config, start, blurry_only).variables
  single = [scores(adapt.adapt(config, start, [clip]).variables, [i])[0]
            for clip, i in zip(blurry_only, chosen)]
  return {"frames": chosen, "baseline": scores(start["deblur"], chosen),
          "single": single, "group": scores(group, chosen)}


def signal_diagnostic(scale: Scale, workdir: str) -> dict[str, Any]:
  """Where the reblur signal is lost: `experiments/signal_diagnostic.py`'s latent-image
  experiment at its defaults (`diagnostic.DEFAULTS`), every row, with the study's FlowNetS."""
  flow_checkpoint = _start(scale, workdir, "flownets")
  flow_fn, flow_model = diagnostic.load_flownet(flow_checkpoint)
  _, found = diagnostic.measure(diagnostic.ROWS, diagnostic.DEFAULTS, flow_fn=flow_fn)
  return {"flow_model": flow_model, "flow_checkpoint": flow_checkpoint, **diagnostic.DEFAULTS,
          "rows": [{"label": row.label, **found[row.key]} for row in diagnostic.ROWS]}


def _score(module, variables, example) -> dict[str, float]:
  """PSNR / SSIM of the network's restored middle frame of a test clip, as evaluate.py scores."""
  windows, sharp = scoring.centred_window(example, module.num_input_frames)
  restored = inference.restore(networks.deblur_fn(module, variables), windows)
  psnr, ssim = scoring.scores(restored, sharp)
  return {"psnr": float(psnr[0]), "ssim": float(ssim[0])}


def picture_extremes(name: str, result: dict, workdir: str, images_dir: str) -> dict[str, str]:
  """Comparison grids of the test frames the fine-tuning improved most and harmed most."""
  gains = [row["finetuned"]["psnr"] - row["baseline"]["psnr"] for row in result["per_frame"]]
  picked = {"best": int(np.argmax(gains)), "worst": int(np.argmin(gains))}
  run_dir = os.path.join(workdir, name)
  scoring.score_checkpoint(None, run_dir, timing_size=None,
                           grid_frames=sorted(set(picked.values())))
  grid_dir = os.path.join(run_dir, scoring.EVAL_DIR)
  paths = {}
  for label, index in picked.items():
    row = result["per_frame"][index]
    suffix = f"_{row['sequence']}_{row['frame']:06d}.png"
    source, = [f for f in os.listdir(grid_dir) if f.startswith("grid_") and f.endswith(suffix)]
    paths[label] = os.path.join(images_dir, f"results_{name}_{label}.png")
    shutil.copyfile(os.path.join(grid_dir, source), paths[label])
  return paths


# ----------------------------------------------------------------------------- the study


def _cached(results: dict, key: str, path: str, compute: Callable[[], Any]) -> Any:
  """`results[key]`, computed once and saved to `path` with everything measured so far."""
  if key not in results:
    logging.info("=== %s", key)
    start = time.perf_counter()
    results[key] = compute()
    results.setdefault("wall_seconds", {})[key] = time.perf_counter() - start
    with open(path + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)  # A kill mid-write keeps the previous file.
  return results[key]


def _check_runs(results: dict, scale: Scale, workdir: str) -> None:
  """Before any work: each fine-tuning run already in `workdir` was started with today's
  settings (else `validation.ConfigError`); one measured at another length is measured again
  once it has resumed to today's."""
  for name in finetunes(scale):
    run_dir = os.path.join(workdir, name)
    saved = checkpoint.saved_config(run_dir)
    config = finetune_config(name, scale, workdir)
    validation.check_resume(config, saved, run_dir)
    if saved is not None and saved["num_train_steps"] != config.num_train_steps:
      results.pop(name, None)


def _prepare(dataset: str) -> dict[str, Any]:
  """Builds the synthetic set if needed; returns what the report says about it."""
  name, _, config = dataset.partition("/")
  builder = prepare.prepare(name, config=config)
  settings = builder.builder_config
  return {"name": dataset, "size": settings.height, "frames": settings.num_frames,
          "train_sequences": settings.train_sequences, "test_sequences": settings.test_sequences,
          "train_speed": settings.speed("train"), "test_speed": settings.speed("test"),
          "clips": {split: info.num_examples for split, info in builder.info.splits.items()}}


def run_study(scale_name: str, workdir: str, output: str) -> dict:
  scale = SCALES[scale_name]
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "results.json")
  results = {}
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
  if results.get("scale", scale_name) != scale_name:
    raise validation.ConfigError(f"{workdir} holds a --scale={results['scale']} study: "
                                 f"expected a --scale={scale_name} one; use another --workdir.")
  results["scale"], results["settings"] = scale_name, dataclasses.asdict(scale)
  _check_runs(results, scale, workdir)

  _cached(results, "data", path, lambda: _prepare(scale.dataset))
  _cached(results, "flownets", path, lambda: pretrain_flow(scale, workdir))
  if not scale.start:
    for network in SUPERVISED:
      _cached(results, f"{network}_baseline", path,
              lambda: train_baseline(network, scale, workdir))
  for run in finetunes(scale):
    _cached(results, run, path, lambda: finetune(run, scale, workdir))
  _cached(results, "step_seconds", path, lambda: {
      "steps": TIMED_STEPS,
      "runs": {run: time_finetune_step(run, scale, workdir) for run in TIMED}})
  _cached(results, "table4", path, lambda: group_vs_single(scale, workdir))
  _cached(results, "signal_diagnostic", path, lambda: signal_diagnostic(scale, workdir))

  images_dir = os.path.join(os.path.dirname(os.path.abspath(output)), "images")
  os.makedirs(images_dir, exist_ok=True)
  figures = {"curves": plot_curves(results, os.path.join(images_dir, "results_curves.png"))}
  for run in ("dvd_reblur", "deblurgan_reblur"):
    figures[run] = picture_extremes(run, results[run], workdir, images_dir)
  # Read from the runs' logs, not cached: cheap, and kept out of results.json's measurements.
  balance = {run: loss_balance(os.path.join(workdir, run))
             for run in ("dvd_reblur", "deblurgan_reblur")}
  results["device"] = inference.device_description()
  with open(output, "w") as f:
    f.write(results_report.markdown(results, figures, os.path.dirname(os.path.abspath(output)),
                                    balance))
  return results


def plot_curves(results: dict, path: str) -> str:
  """Test PSNR against fine-tuning steps: reblur, the alpha = 0 control, the baseline."""
  figure = Figure(figsize=(10, 3.6))
  axes = figure.subplots(1, 2)
  for axis, network in zip(axes, ("dvd", "deblurgan")):
    alpha = results[f"{network}_reblur"]["settings"]["alpha"]
    for run, label in ((f"{network}_reblur", f"reblur (alpha {alpha:g})"),
                       (f"{network}_alpha0", "control (alpha 0)")):
      steps, psnr = zip(*results[run]["curve"])
      axis.plot(steps, psnr, marker="o", label=label)
    axis.axhline(results[f"{network}_reblur"]["curve"][0][1], color="gray", ls="--",
                 label="baseline")
    axis.axhline(results[f"{network}_reblur"]["mean"]["blurry"]["psnr"], color="gray", ls=":",
                 label="blurry input")
    axis.set(title=results_report.NAMES[network],
             xlabel="fine-tuning step", ylabel="test PSNR (dB)")
    axis.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  start = time.perf_counter()
  try:
    run_study(flags.FLAGS.scale, flags.FLAGS.workdir, flags.FLAGS.output)
  except validation.ConfigError as e:
    raise SystemExit(f"error: {e}") from None
  logging.info("Study done in %.1f min; wrote %s.", (time.perf_counter() - start) / 60,
               flags.FLAGS.output)


def _define_flags() -> None:
  """Flags, defined only when run as a program, so that tests and other programs can import
  this module."""
  flags.DEFINE_string("workdir", "runs/reproduce", "Where the study's runs go.")
  flags.DEFINE_enum("scale", "cpu", ["cpu", "gpu"], "Network widths and run lengths.")
  flags.DEFINE_string("output", "docs/results.md", "The report; figures go next to it, "
                      "in images/.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
