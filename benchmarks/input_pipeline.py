r"""Throughput of the training input pipeline: clips/s of random 128x128 crops of the synthetic set.

    python benchmarks/input_pipeline.py                      # in-process threads
    python benchmarks/input_pipeline.py --worker_count=2     # two worker processes

Prepares `synthetic_blur/<config>` in `--data_dir` first if needed (the "train" config, 160x160,
takes minutes), then times `--steps` batches of `--labeled_batch_size` labeled +
`--unlabeled_batch_size` unlabeled 3-frame clips after `--warmup` batches. A clip is 3 blurry
frames (+ 3 sharp frames and 6 flow fields when labeled). To measure on N cores, pin the process:
`taskset -c 0-1 python benchmarks/input_pipeline.py` for 2.
"""

import os
import time

from absl import app
from absl import flags

from reblur_jax.data import pipeline
from reblur_jax.data import prepare

_CONFIG = flags.DEFINE_string("config", "train", "synthetic_blur config.")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"), "TFDS data dir.")
_CROP = flags.DEFINE_integer("crop_size", 128, "Square crop side, pixels.")
_LABELED = flags.DEFINE_integer("labeled_batch_size", 8, "Labeled clips per batch.")
_UNLABELED = flags.DEFINE_integer("unlabeled_batch_size", 8, "Unlabeled clips per batch.")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed batches.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed batches first (worker start, caches).")
_THREADS = flags.DEFINE_integer("num_threads", 2, "Threads assembling batches.")
_WORKERS = flags.DEFINE_integer("worker_count", 0, "Worker processes (0: in-process).")


def main(argv):
  del argv
  prepare.prepare("synthetic_blur", config=_CONFIG.value, data_dir=_DATA_DIR.value)
  name = f"synthetic_blur/{_CONFIG.value}"
  batches = pipeline.create_train_iterator(
      labeled=name, unlabeled=name, labeled_batch_size=_LABELED.value,
      unlabeled_batch_size=_UNLABELED.value, crop_size=_CROP.value, data_dir=_DATA_DIR.value,
      num_threads=_THREADS.value, worker_count=_WORKERS.value, process_index=0, process_count=1)
  for _ in range(_WARMUP.value):
    next(batches)
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    next(batches)
  seconds = time.perf_counter() - start
  clips = _STEPS.value * (_LABELED.value + _UNLABELED.value)
  print(f"{name}, {_CROP.value}x{_CROP.value} crops, batches of {_LABELED.value} labeled + "
        f"{_UNLABELED.value} unlabeled clips, num_threads={_THREADS.value}, "
        f"worker_count={_WORKERS.value}, {len(os.sched_getaffinity(0))} cores: "
        f"{clips / seconds:.1f} clips/s ({1000 * seconds / _STEPS.value:.1f} ms/batch)")


if __name__ == "__main__":
  app.run(main)
