r"""Deblurs your video: `python -m reblur_jax.deblur --checkpoint=CKPT --input=PATH --output=DIR`.

CKPT is a training workdir (its newest checkpoint), one checkpoint `<workdir>/checkpoints/<step>`
or a shipped network (`pretrained/dvd`, `pretrained/deblurgan`); PATH a folder of frames (sorted
by name) or a video file. DIR receives one PNG per frame (named after the input frames,
`000000.png`... for a video) and, for a video input, `<name>_deblurred.mp4` at the input's frame
rate.

  python -m reblur_jax.deblur --checkpoint=runs/dvd_reblur --input=shaky.mp4 --output=out/

--adapt_steps=N first fine-tunes the network on this very video with the self-supervised reblur
loss of training (the paper's fine-tuning on a group of test images, Table 4), then deblurs it.
Its flows come from --adapt_flows: FlowNetS on the restored frames (the checkpoint's own if its
run had one, else --flow_checkpoint), or TV-L1 on the blurry frames (the default where there is
no FlowNetS, as for the shipped supervised networks). --adapt_tau is the exposure the blur model
assumes (default: the checkpoint config's), and it blurs in linear light, as a camera integrates
(--noadapt_linear_light for blur averaged in encoded values, as the synthetic sets' is). Half
of each adaptation batch are labeled clips (`L_S`) of the set the checkpoint was trained on, or
of --labeled_dataset, with `L_U` weighted --adapt_alpha: they keep the network a deblurrer while
`L_U` fits it to the video (--noadapt_labeled adapts to the video alone). Safeguards that need no
ground truth are on by default (--adapt_safe): some frames are held out, the weights (averaged
over the last steps) with the lowest reblur error on them are kept, and the starting weights are
returned when adapting does not lower it by --adapt_margin or the blur model does not fit the
video (--adapt_min_reblur_psnr); the last line printed says what they decided.
docs/evaluation.md has the details.

  python -m reblur_jax.deblur --checkpoint=pretrained/dvd --input=shaky.mp4 --output=out/ \
      --adapt_steps=100
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from absl import app
from absl import flags
from absl import logging

from reblur_jax import console
from reblur_jax.evaluation import safeguards as safeguards_lib

# The networks, JAX and the input pipeline are imported by the functions that use them, so that
# the command answers --help and bad flags at once instead of after seconds of imports.


def deblur_video(checkpoint: str, input_path: str, output: str, *, overwrite: bool = False,
                 adapt_steps: int = 0, adapt_learning_rate: float | None = None,
                 adapt_batch_size: int | None = None, flow_checkpoint: str | None = None,
                 labeled_dataset: str | None = None, data_dir: str | None = None,
                 tile: int | None = None, adapt_safe: bool = True,
                 adapt_safeguards: Mapping[str, Any] | None = None,
                 adapt_flow_gradient: str | None = None,
                 adapt_flows: str | None = None,
                 adapt_tau: float | None = None,
                 adapt_linear_light: bool = True,
                 adapt_labeled: bool = True,
                 adapt_alpha: float | None = None) -> dict[str, list[str]]:
  """Deblurs the video at `input_path` into `output` (module docstring); returns what it wrote.

  Every input is checked before any network runs. `adapt_learning_rate` None is the rate chosen
  on validation, `adapt.LEARNING_RATE`. `adapt_safe` adapts with `safeguards.Safeguards`, its
  defaults replaced by `adapt_safeguards` (`{field: value}`); False adapts to every frame for
  all steps. `adapt_flow_gradient` None is `adapt.FLOW_GRADIENT`, `adapt_flows` None
  `adapt.default_flow_source` (the checkpoint config's `flow_source`, or TV-L1 where there is no
  FlowNetS), `adapt_tau` None the checkpoint config's `tau`; `adapt_linear_light` blurs in linear
  light, as a camera integrates (False: in encoded values, as the synthetic sets).
  `adapt_labeled` mixes labeled clips into each adaptation batch: `labeled_dataset`, or None for
  the set the checkpoint was trained on (`adapt.labeled_default`; the embedded synthetic sets are
  generated on first use), with `L_U` weighted `adapt_alpha` (None: `adapt.ALPHA`). With
  `adapt_steps`, the result's `"adaptation"` is one line saying what the safeguards decided.

  Raises:
    FileNotFoundError: no input, no checkpoint, or (adapting with FlowNetS) no flow network.
    ValueError: a bad argument (`validation.ConfigError`), unreadable input
      (`CorruptFrameError`), a checkpoint of the wrong model (`checkpoint.ModelMismatchError`).
    FileExistsError: `output` holds files of the same names, and not `overwrite`.
    disk.DiskFullError: no space left while writing; the frames written so far are complete.
  """
  # pylint: disable=g-import-not-at-top
  from reblur_jax.evaluation import adapt as adapt_lib
  from reblur_jax.evaluation import networks
  from reblur_jax.evaluation import video
  from reblur_jax.training import validation
  # pylint: enable=g-import-not-at-top

  if adapt_learning_rate is None:
    adapt_learning_rate = adapt_lib.LEARNING_RATE
  adapt_flow_gradient = adapt_flow_gradient or adapt_lib.FLOW_GRADIENT
  adapt_alpha = adapt_lib.ALPHA if adapt_alpha is None else adapt_alpha
  check_arguments(output=output, adapt_steps=adapt_steps, adapt_learning_rate=adapt_learning_rate,
                  adapt_batch_size=adapt_batch_size, tile=tile,
                  adapt_flow_gradient=adapt_flow_gradient, adapt_flows=adapt_flows,
                  adapt_tau=adapt_tau, adapt_alpha=adapt_alpha)
  if labeled_dataset and not adapt_labeled:
    raise validation.ConfigError(f"--labeled_dataset={labeled_dataset} with --noadapt_labeled: "
                                 "drop one of the two.")
  safeguards = (safeguards_lib.Safeguards(**(adapt_safeguards or {})) if adapt_safe else None)
  if safeguards is not None:
    safeguards_lib.check(safeguards)
  restored = networks.restore(checkpoint)
  config = restored.config
  if adapt_steps and adapt_labeled:
    labeled_dataset = labeled_dataset or adapt_lib.labeled_default(config)
  if adapt_steps and labeled_dataset:
    try:
      validation.check_dataset(labeled_dataset, config.labeled_split,
                               data_dir or config.get("data_dir") or None,
                               what="--labeled_dataset", data_dir_flag="--data_dir")
    except validation.ConfigError as e:
      raise validation.ConfigError(f"{e} Or pass --noadapt_labeled to adapt to the video "
                                   "alone.") from None

  source = video.open_source(input_path)
  stem = os.path.splitext(os.path.basename(os.path.normpath(input_path)))[0]
  video_name = f"{stem}_deblurred.mp4" if source.is_video_file else None
  video.check_output(output, source, video_name=video_name, overwrite=overwrite)
  if adapt_steps:  # Adaptation samples clips of the whole video at random: it is read whole.
    clip = video.read(input_path)
    adapt_flows = adapt_flows or adapt_lib.default_flow_source(
        config, flow_network_at_hand=restored.flow_network is not None or bool(flow_checkpoint))
    config = adapt_lib.adaptation_config(
        restored.config, steps=adapt_steps, frame_size=clip.frames.shape[1:3],
        learning_rate=adapt_learning_rate, batch_size=adapt_batch_size,
        labeled_dataset=labeled_dataset, data_dir=data_dir, flow_gradient=adapt_flow_gradient,
        flow_source=adapt_flows, tau=adapt_tau, linear_light=adapt_linear_light,
        alpha=adapt_alpha)
    if config.flow_source == "flownets" and restored.flow_network is None:
      if not flow_checkpoint:
        raise FileNotFoundError(
            "--adapt_flows=flownets needs a FlowNetS for the reblur loss, and the checkpoint's "
            "run had none (it was trained without unlabeled clips). Pass --flow_checkpoint=<a "
            "flow training workdir, e.g. of configs/flownets_pretrain.py, or a variables "
            "directory such as pretrained/flownets>, or leave --adapt_flows unset for TV-L1.")
      restored.use_flow(flow_checkpoint)
    clips = video.Clips(clip.frames, adapt_lib.clip_length(config))
    adaptation = adapt_lib.adapt(
        config, {"deblur": restored.deblur_variables, "flow": restored.flow_variables}, clips,
        safeguards=safeguards)
    restored.deblur_variables = adaptation.variables
  else:
    # A first pass decodes every frame, holding one at a time, so that a corrupt or odd-sized
    # frame stops the command before any network runs or any file is written.
    for _ in video.frames(source):
      pass

  logging.info("Deblurring %s with %s of %s, step %d%s.", input_path, restored.model, checkpoint,
               restored.step, f", {adaptation.decision.describe()}" if adapt_steps else "")
  # Frames stream from the input through the network to the files: memory holds a window.
  names = collections.deque()
  stream = (names.append(name) or frame for name, frame in video.frames(source))
  written = video.write(output, ((names.popleft(), frame)
                                 for frame in restored.deblur_stream(stream, tile=tile)),
                        video_name=video_name, fps=source.fps)
  if adapt_steps:
    written["adaptation"] = [f"Adaptation {adaptation.decision.describe()}."]
  return written


def check_arguments(*, output: str, adapt_steps: int, adapt_learning_rate: float,
                    adapt_batch_size: int | None, tile: int | None,
                    adapt_flow_gradient: str | None = None, adapt_flows: str | None = None,
                    adapt_tau: float | None = None, adapt_alpha: float | None = None) -> None:
  """The command's flags, before anything is read."""
  # pylint: disable=g-import-not-at-top
  from reblur_jax.data import estimated_flows
  from reblur_jax.training import validation
  # pylint: enable=g-import-not-at-top
  if os.path.exists(output) and not os.path.isdir(output):
    raise validation.ConfigError(f"--output={output} is a file: expected a folder (new or "
                                 "existing) for the frames; pass another path.")
  checks = [("--adapt_steps", adapt_steps, adapt_steps >= 0, "a step count >= 0"),
            ("--adapt_learning_rate", adapt_learning_rate, adapt_learning_rate > 0, "a rate > 0"),
            ("--adapt_batch_size", adapt_batch_size, adapt_batch_size is None
             or adapt_batch_size >= 1, "a clip count >= 1"),
            ("--tile", tile, tile is None or tile >= 0, "a tile side >= 0 (0: whole frames)"),
            ("--adapt_flow_gradient", adapt_flow_gradient, adapt_flow_gradient in
             (None, *validation.FLOW_GRADIENTS), f"one of {validation.FLOW_GRADIENTS}"),
            ("--adapt_flows", adapt_flows, adapt_flows in (None, *estimated_flows.SOURCES),
             f"one of {estimated_flows.SOURCES}"),
            ("--adapt_tau", adapt_tau, adapt_tau is None or 0 < adapt_tau <= 1,
             "an exposure in (0, 1] (0.5: the exposure fills the frame interval)"),
            ("--adapt_alpha", adapt_alpha, adapt_alpha is None or adapt_alpha >= 0,
             "a weight >= 0")]
  for flag, value, ok, expected in checks:
    if not ok:
      raise validation.ConfigError(f"{flag}={value}: expected {expected}; pass a value in range.")


def _define_flags() -> None:
  """Flags, defined only when run as a program (importing this module defines none)."""
  flags.DEFINE_string("checkpoint", None, "Training workdir, <workdir>/checkpoints/<step> or a "
                      "shipped network (pretrained/dvd).",
                      required=True)
  flags.DEFINE_string("input", None, "Folder of frames or a video file.", required=True)
  flags.DEFINE_string("output", None, "Folder for the deblurred frames (and video).",
                      required=True)
  flags.DEFINE_bool("overwrite", False, "Replace files of the same names in --output.")
  flags.DEFINE_integer("adapt_steps", 0, "Fine-tune on the input with the reblur loss for this "
                       "many steps first (0: no adaptation).")
  flags.DEFINE_float("adapt_learning_rate", None, "Adam's rate for adapting (default: the "
                     "rate chosen on validation, 1e-3; the paper's: 1e-4).")
  flags.DEFINE_integer("adapt_batch_size", None, "Clips per adaptation step (default: the "
                       "checkpoint config's batch_size).")
  flags.DEFINE_string("flow_checkpoint", None, "FlowNetS for adapting when the checkpoint has "
                      "none: a training workdir or a variables directory.")
  flags.DEFINE_bool("adapt_labeled", True, "Mix labeled clips into each adaptation batch (half "
                    "of it): --labeled_dataset's, default the set the checkpoint was trained on. "
                    "--noadapt_labeled adapts to the video alone.")
  flags.DEFINE_string("labeled_dataset", None, "Labeled set to mix into adaptation, e.g. "
                      "gopro/blur_t7 (default: the checkpoint config's labeled_dataset).")
  flags.DEFINE_float("adapt_alpha", None, "Weight of the reblur loss against the labeled "
                     "clips' loss while adapting (default: 0.3, chosen on validation).")
  flags.DEFINE_string("data_dir", None, "TFDS data directory of --labeled_dataset.")
  flags.DEFINE_string("adapt_flow_gradient", None, "FlowNetS in the reblur loss while "
                      "adapting: 'through' or 'stop' (its flows treated as constants; the "
                      "default).")
  flags.DEFINE_string("adapt_flows", None, "Flows of the reblur loss while adapting: "
                      "'flownets' (FlowNetS on the restored frames) or 'tvl1' (TV-L1 on the "
                      "blurry frames, fixed; no FlowNetS needed). Default: the checkpoint "
                      "config's flow_source, or tvl1 where there is no FlowNetS.")
  flags.DEFINE_float("adapt_tau", None, "Exposure the blur model assumes while adapting: each "
                     "blur segment spans tau times the flow to the neighbour (0.5: the exposure "
                     "fills the frame interval). Default: the checkpoint config's tau.")
  flags.DEFINE_bool("adapt_linear_light", True, "Blur model in linear light while adapting, as "
                    "a camera integrates; --noadapt_linear_light blurs the encoded values (the "
                    "paper's model; the synthetic sets' blur).")
  flags.DEFINE_bool("adapt_safe", True, "Adapt with the safeguards below (no ground truth "
                    "needed); --noadapt_safe adapts to every frame for all steps.")
  help_texts = {
      "holdout_every": "Every k-th frame is held out of adaptation and its reblur error measured.",
      "max_held_out": "At most this many held-out frames, evenly spread.",
      "eval_every": "Steps between measurements of the held-out reblur error.",
      "patience": "Stop after this many measurements without a lower held-out reblur error.",
      "margin": "Keep the adapted weights only if the held-out reblur error fell by more than "
                "this fraction; else return the starting ones.",
      "min_reblur_psnr": "Decline to adapt when the starting network's held-out reblurred frames "
                         "match the blurry ones below this PSNR (dB): the blur model does not "
                         "fit the video. 0: never.",
      "anchor": "After each step, move the parameters this fraction of the way back to the "
                "starting ones (0: no anchoring).",
      "sharpness_tolerance": "A measurement counts only if the held-out restored frames are "
                             "at most this fraction less sharp (mean absolute gradient) than the "
                             "starting network's.",
      "weight_average": "Measure and keep a moving average of the parameters over the steps, "
                        "moving 1 - this fraction of the way to each step's (0: the last "
                        "step's)."}
  for field in dataclasses.fields(safeguards_lib.Safeguards):
    define = flags.DEFINE_integer if field.type == "int" else flags.DEFINE_float
    define(f"adapt_{field.name}", field.default, help_texts[field.name])
  flags.DEFINE_integer("tile", None, "Tile side in pixels; 0: whole frames (default: whole "
                       "frames unless they do not fit in device memory).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  console.quiet()
  from reblur_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from reblur_jax import disk  # pylint: disable=g-import-not-at-top

  args = flags.FLAGS
  try:
    paths = deblur_video(
        args.checkpoint, args.input, args.output, overwrite=args.overwrite,
        adapt_steps=args.adapt_steps, adapt_learning_rate=args.adapt_learning_rate,
        adapt_batch_size=args.adapt_batch_size, flow_checkpoint=args.flow_checkpoint,
        labeled_dataset=args.labeled_dataset, data_dir=args.data_dir, tile=args.tile,
        adapt_safe=args.adapt_safe, adapt_flow_gradient=args.adapt_flow_gradient,
        adapt_flows=args.adapt_flows, adapt_tau=args.adapt_tau,
        adapt_linear_light=args.adapt_linear_light, adapt_labeled=args.adapt_labeled,
        adapt_alpha=args.adapt_alpha,
        adapt_safeguards={field.name: args[f"adapt_{field.name}"].value
                          for field in dataclasses.fields(safeguards_lib.Safeguards)})
  # The messages say what to fix: bad input, a diverged adaptation, frames too large to fit.
  except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError, MemoryError,
          disk.DiskFullError, checkpoint.CheckpointError) as e:
    sys.exit(f"error: {e}")
  written = f"{len(paths['frames'])} frames" + (f" and {paths['video'][0]}" if "video" in paths
                                                 else "")
  for line in paths.get("adaptation", []):
    print(line)
  print(f"Wrote {written} to {os.path.abspath(args.output)}.")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
