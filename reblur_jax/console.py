"""The commands' console: their own messages, progress bars and results, not the frameworks'.

TensorFlow (imported by the summary writers and by dataset preparation) prints its oneDNN banner,
JAX logs each accelerator backend it fails to find, Orbax, TFDS and grain log the files they touch
and warn about their own settings (a read-only checkpoint directory, a missing OpenCV): lines a
user cannot act on. `quiet()` keeps them off the console unless the command line gives absl's
`--verbosity` (e.g. `--verbosity=0` for every INFO line, `1` for debug). The commands' `main()`
call it once their flags are parsed, before TensorFlow is imported; library code does not, so a
notebook's or a test's logging stays as its owner set it.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import flags
from absl import logging

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def quiet() -> None:
  """Keeps other libraries' log lines off the console (`_shown`), unless --verbosity was given."""
  if flags.FLAGS["verbosity"].present:
    return
  # Read when TensorFlow is imported (values the user exported win). "1" hides its C++ INFO
  # lines and keeps warnings and errors. Its oneDNN banner ignores that level (TF 2.21) and goes
  # with the oneDNN kernels, which nothing here runs: TensorFlow only serialises summaries and
  # dataset files.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
  logging.get_absl_handler().addFilter(_shown)


def _shown(record: std_logging.LogRecord) -> bool:
  """Everything from this package or the running script; errors from anyone; JAX's warnings,
  which say when it falls back to the CPU (e.g. a GPU but no CUDA jaxlib)."""
  if record.levelno >= std_logging.ERROR:
    return True
  if record.levelno >= std_logging.WARNING and record.name.split(".")[0] == "jax":
    return True
  path = os.path.abspath(record.pathname)
  script = getattr(sys.modules["__main__"], "__file__", None)
  return path.startswith(_PACKAGE) or (script is not None and path == os.path.abspath(script))
