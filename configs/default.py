"""Defaults shared by every training config; each config imports this and changes a few fields.

Not a run by itself: use one of the configs next to it (their docstrings give the commands).
Any field can be overridden on the command line, e.g. `--config.alpha=0.2`.
"""

import ml_collections

from reblur_jax.training import variants

# `--config=<file>.py:<variant>`: "" the paper's run on the embedded synthetic set; "cpu" the same
# at laptop scale; "gopro" / "dvd" the paper's run on that real set (prepared by hand).
VARIANTS = ("", "cpu", "gopro", "dvd")
# TFDS name/config of the real sets in 3-frame clips; DVD's 5-frame input reads the `_t7` ones.
REAL_DATA = {"gopro": "gopro/blur", "dvd": "dvd/default"}
# Each real set's tau, `reblur_jax.blur.exposure_tau(E, D)` for E high-speed frames averaged per
# blurry frame and D high-speed frames between consecutive blurry frames (docs/data.md, "tau of
# the real sets"): GoPro averages E = 7-13 frames of 240 fps video into time-disjoint, adjacent
# windows (D = E); DVD averages E = 7 of the 8 frames between its 30 fps frames (D = 8; E is
# still to be checked against Su et al.'s text, docs/data.md). The paper's text (tau = 1) is the
# ablation `--config.tau=1`.
REAL_DATA_TAU = {"gopro": 0.5, "dvd": 7 / 16}


def apply_variant(config: ml_collections.ConfigDict, variant: str, *, cpu_steps: int
                  ) -> ml_collections.ConfigDict:
  """Turns a config into its `variant` (see `VARIANTS`); `cpu_steps` is the `cpu` run's length."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown config variant {variant!r}; choose one of {VARIANTS} "
                     "(e.g. --config=configs/dvd_reblur.py:cpu).")
  if variant == "cpu":
    return shrink_for_cpu(config, width=0.25, steps=cpu_steps)
  if variant in REAL_DATA:
    return use_real_data(config, variant)
  return config


def shrink_for_cpu(config: ml_collections.ConfigDict, *, width: float, steps: int
                   ) -> ml_collections.ConfigDict:
  """The `:cpu` variants: thin networks on the `study` synthetic set, minutes on two cores.

  `study` is 96-pixel video whose test split moves faster than its train split, so a network
  trained on S meets harder blur in U and evaluation, the gap the paper's fine-tuning closes.
  """
  for group in ("labeled", "unlabeled", "eval"):
    config[f"{group}_dataset"] = config[f"{group}_dataset"].replace("/train", "/study")
  config.num_eval_batches = -1
  return variants.short_run(config, steps=steps, width=width, crop_size=64, batch_size=8,
                            log_every=10, eval_every=steps // 2, checkpoint_every=steps // 2)


def use_real_data(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """The paper's setting on GoPro ("gopro", its MCD) or DVD ("dvd"), prepared as docs/data.md
  says: S = the train split, U and evaluation = the test split (the paper fine-tunes on the
  blurry frames of its test videos), tau = the set's exposure (`REAL_DATA_TAU`; the paper's
  text says 1, reachable as `--config.tau=1`)."""
  for group in ("labeled", "unlabeled", "eval"):
    clips = "_t7" if config[f"{group}_dataset"].endswith("_t7") else ""
    config[f"{group}_dataset"] = REAL_DATA[name] + clips
  config.labeled_split, config.unlabeled_split, config.eval_split = "train", "test", "test"
  config.tau = REAL_DATA_TAU[name]
  if "head" in config.model_kwargs:
    config.model_kwargs.head = "original"  # These runs start from the released DVD weights.
  return config


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # What is trained: "deblur" (d, with L = L_S + alpha * L_U) or "flow" (FlowNetS on
  # ground-truth flow, FlowNet's multi-scale EPE).
  config.task = "deblur"

  # ---------------------------------------------------------------- networks
  # Deblur network d: a name for `reblur_jax.models.create` ("dvd" | "deblurgan") and its kwargs
  # (`width` multiplies channels, 1.0 = the original; DVD `frames` 5 | 1; DeblurGAN
  # `dropout_rate`).
  config.model = "dvd"
  config.model_kwargs = ml_collections.ConfigDict({"width": 1.0, "frames": 5})
  # FlowNetS kwargs; the flow network is built when some clips are unlabeled (or task="flow").
  config.flow_model_kwargs = ml_collections.ConfigDict({"width": 1.0})
  # Starting variables (a `reblur_jax.checkpoint.save_variables` directory, e.g. written by
  # `python -m reblur_jax.models.convert` from the released weights, or `<workdir>/variables/...`
  # of an earlier run); "" = random initialisation.
  config.init_checkpoint = ""
  config.flow_init_checkpoint = ""
  # Apply d in training mode: BatchNorm uses (and updates) batch statistics, dropout is on. Off
  # for fine-tuning, where the pre-trained statistics stay frozen.
  config.train_mode = False
  # Also train FlowNetS through the reblur loss (paper footnote 1). Gradients always reach d
  # through the flow network; this only decides whether f's parameters move.
  config.finetune_flow = False
  # How L_U's gradient meets the flows: "through" FlowNetS into d (the paper), or "stop" (the
  # flows of the restored frames are constants; d is pulled only through the frame it blurs).
  config.flow_gradient = "through"
  # Where L_U's flows come from: "flownets" (FlowNetS on the restored frames t-1, t, t+1, the
  # paper) or "tvl1" (scikit-image's TV-L1 on the blurry frames, once per unlabeled clip, then
  # fixed; no FlowNetS: docs/signal_diagnostic.md, reblur_jax.data.estimated_flows).
  config.flow_source = "flownets"
  # Where L_U is measured (losses.REBLUR_MASKS): "none" (every pixel, the paper), "inside" (only
  # pixels whose blur segments stay inside the crop: beyond its border `reblur` clamps, while the
  # camera saw more) or "smooth_motion" (not near motion boundaries of the flows, where layers
  # occlude each other and the per-pixel line kernel does not hold).
  config.reblur_mask = "none"
  # Dtype the networks compute in: "float32", or "bfloat16" for mixed precision (the GPU/TPU
  # convention: parameters, optimiser state, losses and checkpoints stay float32).
  config.compute_dtype = "float32"

  # ---------------------------------------------------------------- loss
  config.alpha = 0.1  # Weight of the self-supervised term L_U (paper: 0.1).
  config.blur_model = "conv"  # "conv" (the paper's kernel table) or "warp" (Table 3 ablation).
  config.frames = 3  # Frames the blur model uses: 3 (t-1, t, t+1) or 2 (t, t+1; Table 5).
  # Exposure fraction of the flow to each neighbour: each blur segment spans tau times the flow
  # to that neighbour, E / (2 D) for E sub-frames averaged, D between frames (docs/blur_model.md;
  # the paper's text: 1, the ablation --config.tau=1). 0.5: the exposure fills the frame
  # interval, as the synthetic camera's does; the real sets' variants set theirs. Supervised
  # training never reads it, but adapting its network to a video does.
  config.tau = 0.5
  # Blur in linear light, as a camera integrates (blur.reblur); False blurs the gamma-encoded
  # values, as the paper's model and the synthetic sets' renderer do.
  config.reblur_linear_light = False
  config.max_disp = 16  # Flow range of the conv kernel table, pixels (paper: 16).
  config.blur_samples = 8  # Warps per segment of the warp model.

  # ---------------------------------------------------------------- data
  # TFDS names of the labeled set S and the unlabeled set U ("name" or "name/config"), the
  # held-out labeled set for evaluation, and where TFDS keeps them ("" = TFDS's default).
  config.labeled_dataset = "synthetic_blur/train_t7"
  config.unlabeled_dataset = "synthetic_blur/train_t7"
  config.eval_dataset = "synthetic_blur/train_t7"
  config.labeled_split = "train"
  # The paper fine-tunes on the blurry frames of the very videos it evaluates (its U are the
  # test sets, Table 1); the reblur configs set "test".
  config.unlabeled_split = "train"
  config.eval_split = "test"
  config.data_dir = ""
  config.crop_size = 128  # Square training crops, pixels.
  # Chance that a labeled training clip has a scene cut (frames from a random neighbour of the
  # middle outwards from another crop window), so that a multi-frame network learns not to paste
  # neighbours it cannot align into the middle frame (docs/baselines.md). 0 for flow training.
  config.cut_probability = 0.0
  config.batch_size = 16  # Global batch (all devices, all hosts), labeled + unlabeled clips.
  # Fraction of each batch drawn from U. Both parts must divide by the device count.
  config.unlabeled_fraction = 0.5
  config.eval_batch_size = 8
  config.num_eval_batches = 8  # -1: the whole eval split.

  # ---------------------------------------------------------------- optimisation
  config.learning_rate = 1e-4  # Adam (paper: 1e-4).
  config.lr_decay_epochs = (30, 50, 100)  # x lr_decay_factor from each of these epochs.
  config.lr_decay_factor = 0.5
  config.num_epochs = 120.0  # An epoch is one pass over U, or over S without U.
  config.num_train_steps = -1  # > 0 overrides num_epochs.

  # ---------------------------------------------------------------- loop
  config.log_every_steps = 50
  config.eval_every_steps = 1000  # Also before the first step and after the last.
  config.checkpoint_every_steps = 1000
  config.max_to_keep = 3
  config.num_image_summaries = 4  # Clips shown as blurry | deblurred | reblurred | sharp.
  config.seed = 0
  return config
