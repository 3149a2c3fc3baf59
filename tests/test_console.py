"""`console.quiet`: a command's console keeps its own lines; absl's --verbosity brings the rest.

The commands themselves are run in test_deblur.py, test_evaluate.py, test_builders.py and
test_training_run.py; here a small absl program stands in for them (no JAX, a second each).
"""

import logging
import os
import subprocess
import sys

import pytest

from reblur_jax import console

PROGRAM = '''
import logging as std_logging
import os

from absl import app
from absl import logging

from reblur_jax import console


def main(argv):
  console.quiet()
  logging.info("the program's own line")
  # What JAX logs when it probes for a TPU, as if from its own file.
  std_logging.getLogger("jax._src.xla_bridge").handle(std_logging.makeLogRecord({
      "name": "jax._src.xla_bridge", "levelno": std_logging.INFO, "levelname": "INFO",
      "pathname": "/site-packages/jax/_src/xla_bridge.py",
      "msg": "Unable to initialize backend 'tpu'"}))
  print("TF_ENABLE_ONEDNN_OPTS", os.environ.get("TF_ENABLE_ONEDNN_OPTS"))


app.run(main)
'''


@pytest.mark.parametrize("args, detail", [((), False), (("--verbosity=0",), True)])
def test_verbosity_brings_other_libraries_lines_back(tmp_path, args, detail):
  script = tmp_path / "program.py"
  script.write_text(PROGRAM)
  env = {k: v for k, v in os.environ.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
  result = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "the program's own line" in result.stderr
  assert ("backend 'tpu'" in result.stderr) == detail
  assert result.stdout.split() == ["TF_ENABLE_ONEDNN_OPTS", "None" if detail else "0"]


def _record(name: str, level: int, path: str) -> logging.LogRecord:
  return logging.LogRecord(name, level, path, 1, "message", None, None)


def test_lines_shown_by_default():
  ours = os.path.join(os.path.dirname(console.__file__), "deblur.py")
  orbax = os.path.join("site-packages", "orbax", "checkpoint", "checkpoint_manager.py")
  xla_bridge = os.path.join("site-packages", "jax", "_src", "xla_bridge.py")
  assert console._shown(_record("absl", logging.INFO, ours))
  assert not console._shown(_record("absl", logging.INFO, orbax))
  # Orbax's "Given directory is read only" on every restore; its errors stay.
  assert not console._shown(_record("absl", logging.WARNING, orbax))
  assert console._shown(_record("absl", logging.ERROR, orbax))
  # JAX's backend probing is noise, its CPU fallback warning is not.
  assert not console._shown(_record("jax._src.xla_bridge", logging.INFO, xla_bridge))
  assert console._shown(_record("jax._src.xla_bridge", logging.WARNING, xla_bridge))
