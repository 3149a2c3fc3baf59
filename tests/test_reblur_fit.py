"""The reblur-fit diagnostic (experiments/reblur_fit.py) on a tiny rendered video."""

import numpy as np
import pytest

from experiments import reblur_fit
from reblur_jax import metrics
from reblur_jax.data import synthetic


@pytest.fixture(scope="module")
def videos():
  video = synthetic.render_sequence(1000200, split="test", num_frames=5, height=48, width=48,
                                    max_speed=6.0)
  return {"test": (video["blurry"], video["sharp"])}


def test_rows_measure_psnr_to_sharp_and_how_well_the_frames_reblur(videos):
  (blurry, sharp), = videos.values()
  results = reblur_fit.measure({"identity": {"test": blurry}}, videos, tau=0.5)
  assert list(results) == ["sharp", "blurry", "identity"]
  assert results["identity"] == results["blurry"]  # A network that returns its input.
  expected = float(np.mean(metrics.psnr(blurry / 255.0, sharp / 255.0)))
  assert results["blurry"][0] == pytest.approx(expected, abs=1e-4)
  # The blur model explains the blurry frames from the sharp ones better than from themselves.
  assert results["sharp"][1] > results["blurry"][1]
  table = reblur_fit.markdown(results)
  assert "| sharp |  |" in table and "| identity |" in table
