r"""The DeblurGAN baseline's generator trained supervised (MSE only, no adversarial term).

DeblurGAN (Kupyn et al. 2018) trains its generator with a WGAN-GP critic plus a perceptual loss;
this config trains the same generator with the MSE content loss alone, a stand-in when the
released weights (`python -m reblur_jax.models.convert`, then --config.init_checkpoint) are not
at hand. Its `<workdir>/variables/deblur` starts configs/deblurgan_reblur.py:

  python train.py --config=configs/deblurgan_supervised.py --workdir=runs/deblurgan_supervised
"""

from configs import default


def get_config(variant: str = ""):
  config = default.get_config()
  config.model = "deblurgan"
  config.model_kwargs = {"width": 1.0, "dropout_rate": 0.0}
  for group in ("labeled", "eval"):
    config[f"{group}_dataset"] = "synthetic_blur/train"
  config.unlabeled_fraction = 0.0
  config.batch_size = 16
  config.crop_size = 128
  config.learning_rate = 1e-3  # From scratch; the paper's 1e-4 is for fine-tuning.
  default.apply_variant(config, variant, cpu_steps=300)
  return config
