"""reblur-jax: self-supervised video deblurring (Reblur2Deblur, Chen et al. 2018) in JAX/Flax.

What a notebook or script needs:

* `blur`: the differentiable blur formation model (`reblur`, `reblur_batch`, `kernel_table`);
* `models`: DVD, the DeblurGAN generator and FlowNetS (`models.create(name, **kwargs)`);
* `metrics`: PSNR and SSIM as the paper's tables report them;
* `restore(path)`: a training run's networks (or a shipped one, `pretrained/dvd`), ready to
  `.deblur(frames)`, `.flows(frames)` and `.reblur(frames)`, with its `.config` and `.step`, on
  any machine;
* `checkpoint`: networks and training runs on disk (`save_variables`, `load_variables`,
  `restore_run(path)`: a run's checkpoint as NumPy arrays);
* `train_and_evaluate(config, workdir)`: what `train.py` runs;
* `deblur_video(checkpoint, input_path, output, ...)`: what `python -m reblur_jax.deblur` runs.

Every name is imported on first use, so that the commands (`python -m reblur_jax.deblur`,
`python -m reblur_jax.data.prepare`) answer `--help` without loading JAX, and the physics and the
models alone do not bring in the input pipeline and the summary writers.
"""

import importlib

__version__ = "0.1.0"

_MODULES = ("blur", "checkpoint", "metrics", "models")
_LAZY = {  # Public name: (module, name there).
    "restore": ("reblur_jax.evaluation.networks", "restore"),
    "train_and_evaluate": ("reblur_jax.training", "train_and_evaluate"),
    "deblur_video": ("reblur_jax.deblur", "deblur_video"),
}

__all__ = [*_MODULES, *_LAZY]


def __getattr__(name: str):
  if name in _MODULES:
    return importlib.import_module(f"reblur_jax.{name}")
  if name not in _LAZY:
    raise AttributeError(f"module 'reblur_jax' has no attribute {name!r}")
  module, attribute = _LAZY[name]
  return getattr(importlib.import_module(module), attribute)
