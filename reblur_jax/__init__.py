"""reblur-jax: self-supervised video deblurring (Reblur2Deblur, Chen et al. 2018) in JAX/Flax."""

__version__ = "0.1.0"
