"""A seconds-long DVD-Reblur run on tiny networks and 32-pixel crops, for tests.

Exercises every part of the real job (labeled + unlabeled batches, FlowNetS, the conv blur model,
evaluation, image summaries, checkpoints) at a size that compiles and runs in seconds on a CPU,
on the `tiny` synthetic set (prepared on first use, seconds):

  python train.py --config=configs/smoke.py --workdir=/tmp/reblur_smoke
"""

from configs import default


def get_config():
  config = default.get_config()
  config.model_kwargs.width = 1 / 16
  config.flow_model_kwargs.width = 1 / 32
  for group in ("labeled", "unlabeled", "eval"):
    config[f"{group}_dataset"] = "synthetic_blur/tiny_t7"  # DVD: 7-frame clips.
  config.crop_size = 32
  config.batch_size = 8
  config.unlabeled_fraction = 0.5
  config.eval_batch_size = 4
  config.num_eval_batches = 1
  config.num_train_steps = 6
  config.learning_rate = 1e-3
  config.log_every_steps = 2
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 3
  config.num_image_summaries = 2
  return config
