r"""DeblurGAN-Reblur: the paper's self-supervised fine-tuning of DeblurGAN's generator.

The same hybrid loss as configs/dvd_reblur.py with the single-frame DeblurGAN generator as d (so
3-frame clips: t-1, t, t+1), instance normalisation (nothing frozen), dropout off. Start from the
released generator (`python -m reblur_jax.models.convert`, docs/models.md) or a
configs/deblurgan_supervised.py run, and a trained FlowNetS:

  python train.py --config=configs/deblurgan_reblur.py --workdir=runs/deblurgan_reblur \
      --config.init_checkpoint=runs/deblurgan_supervised/variables/deblur \
      --config.flow_init_checkpoint=runs/flownets/variables/flow

`:cpu` shrinks it for a laptop and, like configs/dvd_reblur.py's, takes L_U's flows from TV-L1 on
the blurry frames (alpha 1, Adam 1e-3, chosen on validation; no FlowNetS needed). Without data
it uses the embedded synthetic set; `:gopro` and `:dvd` are the paper's runs on those sets, as in
configs/dvd_reblur.py (tau = the set's exposure, docs/data.md; `--config.tau=1` for the paper's
text):

  python train.py --config=configs/deblurgan_reblur.py:gopro --workdir=runs/deblurgan_reblur_gopro \
      --config.init_checkpoint=ckpt/deblurgan --config.flow_init_checkpoint=ckpt/flownets
"""

from configs import default


def get_config(variant: str = ""):
  config = default.get_config()
  config.model = "deblurgan"
  config.model_kwargs = {"width": 1.0, "dropout_rate": 0.0}
  for group in ("labeled", "unlabeled", "eval"):
    config[f"{group}_dataset"] = "synthetic_blur/train"
  config.unlabeled_fraction = 0.5
  config.unlabeled_split = "test"  # U: the blurry frames of the test videos, as in the paper.
  config.batch_size = 16
  config.crop_size = 128
  default.apply_variant(config, variant, cpu_steps=150)
  if variant == "cpu":
    # As configs/dvd_reblur.py's, chosen on the study's validation split from the shipped
    # DeblurGAN (docs/baselines.md, runs GC1, GT3, GT4): TV-L1 flows on the blurry frames, Adam
    # 1e-3; alpha 1 gains +0.07 dB over the alpha = 0 control in 200 steps, alpha 3 +0.05.
    config.flow_source = "tvl1"
    config.alpha = 1.0
    config.learning_rate = 1e-3
  return config
