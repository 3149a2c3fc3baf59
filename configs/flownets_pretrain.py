r"""FlowNetS pre-training on the synthetic set's ground-truth flow (FlowNet's multi-scale EPE).

Pairs (t+1, t) and (t-1, t) of sharp synthetic frames against `flow_next` / `flow_prev`; the loss
is FlowNetPytorch's: each of flow2 .. flow6 against the area-averaged target / 20, weights 0.005,
0.01, 0.02, 0.08, 0.32, summed EPE per example. Adam lr 1e-4 as FlowNet. The paper starts from
the released FlowNetS (`python -m reblur_jax.models.convert`); this gives a flow network where
those weights are not at hand, and its `<workdir>/variables/flow` is the
`flow_init_checkpoint` of configs/dvd_reblur.py:

  python train.py --config=configs/flownets_pretrain.py --workdir=runs/flownets
  python train.py --config=configs/flownets_pretrain.py:cpu --workdir=runs/demo/flownets
"""

from configs import default


def get_config(variant: str = ""):
  config = default.get_config()
  config.task = "flow"
  for group in ("labeled", "eval"):
    config[f"{group}_dataset"] = "synthetic_blur/train_t7"  # The set the DVD runs read.
  config.unlabeled_fraction = 0.0
  config.batch_size = 8
  config.crop_size = 128
  if variant in default.REAL_DATA:
    raise ValueError("FlowNetS pre-training needs ground-truth flow, which only the synthetic set "
                     "has: real-data runs start from the released FlowNetS (docs/models.md).")
  default.apply_variant(config, variant, cpu_steps=300)
  if variant == "cpu":
    config.learning_rate = 1e-3  # A few hundred steps from scratch.
  return config
