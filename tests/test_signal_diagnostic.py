"""The signal diagnostic (experiments/signal_diagnostic.py) on tiny held-out frames."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from experiments import signal_diagnostic as diagnostic
from reblur_jax import metrics
from reblur_jax import models

ROWS = {row.key: row for row in diagnostic.ROWS}


@pytest.fixture(scope="module")
def frames():
  return diagnostic.render_frames(sequences=1, frames_per_sequence=1, size=48, max_speed=12.0)


def test_rows_run_and_report(frames):
  module = models.create("flownets", width=0.0625)
  image = jnp.zeros((1, 64, 64, 3))
  # Random weights without running flax's initialisers, which take many seconds to compile.
  shapes = jax.eval_shape(module.init, jax.random.key(0), image, image)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: rng.normal(0.0, 0.05, s.shape).astype(s.dtype), shapes)
  flow_fn = diagnostic.flownet_fn(module, variables)
  rows = [ROWS["true"], ROWS["flownet_x"]]
  results = diagnostic.run(rows, frames, steps=[0, 3], learning_rate=1e-3, flow_fn=flow_fn)

  blurry = float(np.mean(metrics.psnr(frames.blurry, frames.sharp)))
  for row in rows:
    psnr = results[row.key]["psnr"]
    assert sorted(psnr) == [0, 3] and all(np.isfinite(list(psnr.values())))
    assert psnr[0] == pytest.approx(blurry, abs=1e-4)  # Both start from the blurry frame.
  assert results["true"]["epe"] == (0.0, 0.0) and results["true"]["tau"] == frames.tau == 0.5
  (start, end) = results["flownet_x"]["epe"]  # Flows recomputed on x: EPE at start and end.
  assert len(start) == len(end) == 2 and np.all(np.isfinite(start + end))
  report = diagnostic.markdown(rows, results, frames, steps=[0, 3], command="python -m X",
                               flow_model="flownets(width=0.0625)", setup="Setup.")
  for text in ("PSNR @ 3", ROWS["true"].label, ROWS["flownet_x"].label, "python -m X"):
    assert text in report


def test_true_flows_with_matched_tau_deblur_and_tau_1_does_not(frames):
  """The blur model with the true flows and the data's tau carries deblurring signal."""
  steps = [0, 30]
  matched = diagnostic.run_row(ROWS["true"], frames, steps=steps, learning_rate=1e-3)["psnr"]
  paper = diagnostic.run_row(ROWS["true_tau1"], frames, steps=steps, learning_rate=1e-3)["psnr"]
  assert matched[30] > matched[0] + 0.1
  assert paper[30] < matched[30]


def test_x_can_start_from_a_network_s_output():
  grey = lambda video: np.full_like(video, 128)  # A "network" whose output is recognisable.
  frames = diagnostic.render_frames(sequences=1, frames_per_sequence=1, size=48, max_speed=12.0,
                                    restore=grey)
  np.testing.assert_allclose(frames.start, 128 / 255)
  psnr = diagnostic.run_row(ROWS["true"], frames, steps=[0, 1], learning_rate=1e-3)["psnr"]
  assert psnr[0] == pytest.approx(float(np.mean(metrics.psnr(frames.start, frames.sharp))),
                                  abs=1e-4)


def test_tvl1_flow_follows_the_project_convention(frames):
  """TV-L1's (row, col) flow, swapped to (x, y), is close to the true flow; its negation or the
  unswapped order is not."""
  flow_prev, flow_next = diagnostic.fixed_flows(frames, "tvl1")
  epe = np.mean(diagnostic.endpoint_errors(flow_prev, flow_next, frames))
  assert epe < 0.6 * np.mean(diagnostic.endpoint_errors(-flow_prev, -flow_next, frames))
  assert epe < 0.8 * np.mean(diagnostic.endpoint_errors(
      flow_prev[..., ::-1], flow_next[..., ::-1], frames))


def test_missing_flow_checkpoint_is_one_line_error(tmp_path, capsys):
  output = tmp_path / "report.md"
  if "rows" not in flags.FLAGS:  # The command defines its flags only when run as a program.
    diagnostic._define_flags()  # pylint: disable=protected-access
  flags.FLAGS(["signal_diagnostic", "--rows=true,flownet", f"--flow_checkpoint={tmp_path / 'no'}",
               f"--output={output}"])
  try:
    with pytest.raises(SystemExit) as exit_info:
      diagnostic.main([])
  finally:
    flags.FLAGS.unparse_flags()
  assert exit_info.value.code != 0
  assert capsys.readouterr().err.startswith("error: No checkpoint at")
  assert not output.exists()


def test_smooth_motion_mask_reads_the_row_s_own_flows(frames):
  flows = diagnostic.fixed_flows(frames, "true")
  mask = diagnostic.loss_mask(frames, "smooth_motion", 0.5, flows)
  assert mask.shape == frames.blurry.shape[:3] + (1,)
  assert 0 < mask.mean() < 1  # The synthetic frames have moving objects over a moving camera.
  still = tuple(np.zeros_like(f) for f in flows)
  assert diagnostic.loss_mask(frames, "smooth_motion", 0.5, still).all()
  with pytest.raises(ValueError, match="without fixed flows"):
    diagnostic.loss_mask(frames, "smooth_motion", 0.5)


def test_measure_renders_what_its_settings_say_and_runs_the_rows(frames):
  settings = {**diagnostic.DEFAULTS, "sequences": 1, "frames": 1, "size": 48, "max_speed": 12.0,
              "steps": (0, 1)}
  lines = []
  rendered, results = diagnostic.measure([ROWS["true"]], settings, log=lines.append)
  np.testing.assert_array_equal(rendered.blurry, frames.blurry)  # The fixture's settings.
  np.testing.assert_array_equal(rendered.sharp, frames.sharp)
  again = diagnostic.run([ROWS["true"]], frames, steps=(0, 1), learning_rate=1e-3)
  assert results["true"]["psnr"] == pytest.approx(again["true"]["psnr"], abs=1e-5)
  assert len(lines) == 1 and lines[0].startswith("true: ")
