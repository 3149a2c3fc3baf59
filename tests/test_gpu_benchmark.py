"""benchmarks/gpu.py end to end at its --quick size, so that the GPU session's command cannot rot."""

import math
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def test_quick_run_measures_every_part_beside_the_paper():
  rows = gpu.run("quick")
  assert {(r["what"], r["network"]) for r in rows} == {
      ("step", "dvd"), ("frame", "dvd"), ("frame", "deblurgan"), ("frame", "flownets"),
      ("scaling", "dvd")}
  assert {r["dtype"] for r in rows if r["what"] == "frame"} == set(gpu.DTYPES)
  assert all(math.isfinite(r["seconds"]) and r["seconds"] > 0 for r in rows)
  text = gpu.table(rows)
  assert "| 0.56 |" in text and "| 0.84 |" in text and "| 0.85 |" in text  # The paper's.
