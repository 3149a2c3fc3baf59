r"""Speed of the fine-tuning step: steps/s and examples/s of DVD-Reblur and DeblurGAN-Reblur.

The paper's Table 3 setting: a mini-batch of 10 clips of 128 x 128, full-width networks, the conv
and the warp blur model. The step is the real one (`reblur_jax.training`: hybrid loss, Adam,
data-parallel over every local device), on random clips, timed after compilation with the device
synchronised (`train.time_step`: the fastest of the timed steps):

  python benchmarks/train_step.py                       # all four, on the default backend
  JAX_PLATFORMS=cpu python benchmarks/train_step.py --models=dvd --blur_models=warp --steps=2
  python benchmarks/train_step.py --unlabeled_fraction=1  # every clip through the reblur loss
  python benchmarks/train_step.py --compute_dtype=bfloat16  # mixed precision

Prints one row per setting; the batch must divide by the device count. `benchmark` is also what
benchmarks/gpu.py runs.
"""

import jax
import numpy as np
from absl import app
from absl import flags

from configs import deblurgan_reblur
from configs import dvd_reblur
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import train
from reblur_jax.training import validation

CONFIGS = {"dvd": dvd_reblur, "deblurgan": deblurgan_reblur}


def benchmark(model: str, blur_model: str, *, batch_size: int = 10, crop_size: int = 128,
              unlabeled_fraction: float = 0.5, width: float = 1.0, steps: int = 5,
              compute_dtype: str = "float32", devices=None) -> dict[str, float]:
  """Times `steps` training steps after a compiling one, data-parallel over `devices` (all)."""
  devices = jax.devices() if devices is None else devices
  config = CONFIGS[model].get_config()
  config.blur_model, config.compute_dtype = blur_model, compute_dtype
  config.batch_size, config.crop_size = batch_size, crop_size
  config.unlabeled_fraction, config.eval_batch_size = unlabeled_fraction, len(devices)
  config.model_kwargs.width = config.flow_model_kwargs.width = width
  # Synthetic batches: no data set or init checkpoint is read.
  validation.validate_config(config, len(devices), check_files=False)
  mesh = sharding.create_mesh(devices)
  networks = state_lib.create_networks(config)
  run = train.create_run(config, networks, mesh, steps_per_epoch=100)
  sizes = validation.batch_sizes(config)
  rng = np.random.default_rng(0)
  clips = lambda n: rng.uniform(size=(n, run.clip_length, crop_size, crop_size, 3)).astype(
      np.float32)
  batch = {}
  if sizes["labeled"]:
    batch["labeled"] = {"blurry": clips(sizes["labeled"]), "sharp": clips(sizes["labeled"])}
  if sizes["unlabeled"]:
    batch["unlabeled"] = {"blurry": clips(sizes["unlabeled"])}
  compile_s, seconds = train.time_step(run, sharding.global_batch(batch, mesh), steps=steps)
  return {"first_step_s": compile_s, "step_s": seconds, "steps_per_s": 1 / seconds,
          "examples_per_s": batch_size / seconds}


def define_flags():
  flags.DEFINE_list("models", ["dvd", "deblurgan"], "Deblur networks: dvd, deblurgan.")
  flags.DEFINE_list("blur_models", ["conv", "warp"], "Blur models: conv, warp.")
  flags.DEFINE_integer("batch_size", 10, "Clips per step (Table 3: 10).")
  flags.DEFINE_integer("crop_size", 128, "Frame size, pixels (Table 3: 128).")
  flags.DEFINE_float("unlabeled_fraction", 0.5, "Share of unlabeled clips.")
  flags.DEFINE_float("width", 1.0, "Channel multiplier of both networks.")
  flags.DEFINE_integer("steps", 5, "Timed steps after one warm-up step.")
  flags.DEFINE_enum("compute_dtype", "float32", validation.COMPUTE_DTYPES,
                    "Dtype the networks compute in (parameters stay float32).")


def main(argv):
  del argv
  args = flags.FLAGS
  print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()} "
        f"({jax.default_backend()}); batch {args.batch_size} x {args.crop_size} x "
        f"{args.crop_size}, unlabeled fraction {args.unlabeled_fraction}, width {args.width}, "
        f"{args.compute_dtype}, {args.steps} timed steps")
  print(f"{'step':<28}{'first step s':>14}{'s/step':>10}{'steps/s':>10}{'examples/s':>12}")
  for model in args.models:
    for blur_model in args.blur_models:
      r = benchmark(model, blur_model, batch_size=args.batch_size, crop_size=args.crop_size,
                    unlabeled_fraction=args.unlabeled_fraction, width=args.width,
                    steps=args.steps, compute_dtype=args.compute_dtype)
      name = f"{model}-reblur, {blur_model}"
      print(f"{name:<28}{r['first_step_s']:>14.1f}{r['step_s']:>10.3f}{r['steps_per_s']:>10.3f}"
            f"{r['examples_per_s']:>12.2f}", flush=True)


if __name__ == "__main__":
  define_flags()
  app.run(main)
