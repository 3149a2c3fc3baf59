r"""Prepares a dataset of clips (TFDS `array_record`), without apache-beam or TensorFlow.

    python -m reblur_jax.data.prepare synthetic_blur                        # config "tiny"
    python -m reblur_jax.data.prepare synthetic_blur --config=train
    python -m reblur_jax.data.prepare gopro --config=blur_t7 --manual_dir=~/data
    python -m reblur_jax.data.prepare dvd --manual_dir=~/data/DeepVideoDeblurring_Dataset
    python -m reblur_jax.data.prepare blurry_video --manual_dir=~/my_videos --on_corrupt=skip

Names and configs are listed in docs/data.md. The data go to `--data_dir`
(default: `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`), where `pipeline.create_train_dataset`
and `tfds.data_source(name + "/" + config, data_dir=...)` find them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import tensorflow_datasets as tfds
from absl import app
from absl import flags

import reblur_jax.data  # noqa: F401  Registers the builders.
from reblur_jax import console
from reblur_jax.data.builders import frames

NAMES = ("synthetic_blur", "gopro", "dvd", "blurry_video")


def prepare(name: str, *, config: str | None = None, data_dir: str | None = None,
            manual_dir: str | None = None, on_corrupt: str = "fail",
            overwrite: bool = False) -> tfds.core.DatasetBuilder:
  """Builds dataset `name` (one of `NAMES`) at `config` into `data_dir`; returns its builder.

  Raises:
    ValueError: an unknown name or config, or bad input data (messages name the path).
    FileNotFoundError: a missing or wrongly laid out `manual_dir`.
  """
  if name not in NAMES:
    raise ValueError(f"Unknown dataset {name!r}; choose one of {NAMES}.")
  builder_cls = tfds.builder_cls(name)
  configs = [c.name for c in builder_cls.BUILDER_CONFIGS]
  if config is not None and config not in configs:
    raise ValueError(f"{name} has no config {config!r}; choose one of {configs}.")
  builder = builder_cls(config=config or configs[0], data_dir=data_dir, on_corrupt=on_corrupt)
  download_config = tfds.download.DownloadConfig(
      manual_dir=os.path.expanduser(manual_dir) if manual_dir else None,
      download_mode=(tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
                     else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  builder.download_and_prepare(download_config=download_config)
  return builder


def _define_flags() -> None:
  """The command line's flags; defined only when run as a program, so importing `prepare` next
  to other absl programs (benchmarks, training) cannot clash with their flags."""
  flags.DEFINE_string("config", None, "Builder config; default: the builder's first.")
  flags.DEFINE_string("data_dir", None, "TFDS data directory (default: TFDS's).")
  flags.DEFINE_string("manual_dir", None, "Directory holding the downloaded data (gopro, dvd, "
                      "blurry_video); see the builder's download instructions.")
  flags.DEFINE_enum("on_corrupt", "fail", frames.ON_CORRUPT,
                    "An unreadable input image: fail, or skip it with a warning.")
  flags.DEFINE_bool("overwrite", False, "Rebuild even if already prepared.")


def main(argv: Sequence[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError(f"Give one dataset name, one of {NAMES}.")
  console.quiet()
  args = flags.FLAGS
  try:
    builder = prepare(argv[1], config=args.config, data_dir=args.data_dir,
                      manual_dir=args.manual_dir, on_corrupt=args.on_corrupt,
                      overwrite=args.overwrite)
  except (ValueError, FileNotFoundError) as e:  # Bad input data: the message says what to fix.
    sys.exit(f"error: {e}")
  splits = ", ".join(f"{s}: {i.num_examples} clips" for s, i in builder.info.splits.items())
  print(f"{builder.info.full_name} ready in {builder.data_dir} ({splits}).")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
