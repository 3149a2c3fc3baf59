"""Safe test-time adaptation: the held-out frames, the stopping and declining rules, and `adapt`
applying them to a short video with the tiny run of tests/conftest.py."""

import jax
import numpy as np
import pytest

from reblur_jax import checkpoint
from reblur_jax.data import synthetic
from reblur_jax.evaluation import adapt
from reblur_jax.evaluation import safeguards
from reblur_jax.evaluation import video
from reblur_jax.training import validation


def test_every_kth_frame_is_held_out_at_most_max_count_evenly_spread():
  assert safeguards.held_out_frames(16, 4, 8) == (
      [0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15], [2, 6, 10, 14])
  adapted, held = safeguards.held_out_frames(40, 4, 3)
  assert held == [2, 18, 38] and len(adapted) == 37
  assert safeguards.held_out_frames(3, 4, 8) == ([0, 1], [2])
  assert safeguards.held_out_frames(1, 2, 8) == ([0], [])  # Nothing would be left to adapt to.


def test_the_tracker_keeps_the_best_step_and_stops_after_patience():
  tracker = safeguards.Tracker(patience=2)
  assert [tracker.update(s, l, 1.0) for s, l in [(0, 1.0), (10, 0.8), (20, 0.9)]] == [
      True, True, False]
  assert not tracker.stop
  assert not tracker.update(30, 0.8, 1.0)  # A tie is not better.
  assert tracker.stop and (tracker.best_step, tracker.best_loss) == (10, 0.8)
  assert tracker.initial_loss == 1.0


def test_a_blurrier_output_does_not_count_however_low_its_reblur_error():
  tracker = safeguards.Tracker(patience=5, sharpness_tolerance=0.1)
  assert [tracker.update(s, l, g) for s, l, g in [(0, 1.0, 1.0), (10, 0.5, 0.89),
                                                  (20, 0.9, 0.91)]] == [True, False, True]
  assert (tracker.best_step, tracker.blurrier) == (20, 1)
  assert "1 of 2 measurements blurrier" in safeguards.decide(tracker, 20, 0.0,
                                                             stopped=False).reason


def test_decide_keeps_the_best_step_only_past_the_margin():
  tracker = safeguards.Tracker(patience=3)
  for step, loss in [(0, 1.0), (10, 0.95), (20, 0.97)]:
    tracker.update(step, loss, 1.0)
  kept = safeguards.decide(tracker, 20, 0.04, stopped=False)
  assert (kept.adapted, kept.kept_step, kept.steps) == (True, 10, 20)
  assert kept.describe().startswith("adapted: kept step 10 of 20 steps run (ran all steps; ")
  declined = safeguards.decide(tracker, 20, 0.06, stopped=True)
  assert (declined.adapted, declined.kept_step) == (False, 0)
  assert "not more than --adapt_margin=0.06" in declined.describe()
  rising = safeguards.Tracker(patience=1)
  for step, loss in [(0, 1.0), (10, 1.2)]:
    rising.update(step, loss, 1.0)
  assert not safeguards.decide(rising, 10, 0.0, stopped=True).adapted


def test_decline_before_adapting_when_the_blur_model_does_not_fit():
  assert safeguards.decline_before(35.0, 30.0) is None
  declined = safeguards.decline_before(24.5, 30.0)
  assert not declined.adapted and declined.steps == 0
  assert "24.50 dB < --adapt_min_reblur_psnr=30" in declined.reason


@pytest.mark.parametrize("field, value, message", [
    ("holdout_every", 1, r"--adapt_holdout_every=1: expected an integer >= 2"),
    ("max_held_out", 0, r"--adapt_max_held_out=0: expected a frame count >= 1"),
    ("eval_every", 0, r"--adapt_eval_every=0: expected a step count >= 1"),
    ("patience", 0, r"--adapt_patience=0: expected a count of measurements >= 1"),
    ("margin", 1.0, r"--adapt_margin=1.0: expected a relative drop in \[0, 1\)"),
    ("margin", float("nan"), r"--adapt_margin=nan: expected a relative drop"),
    ("min_reblur_psnr", -1.0, r"--adapt_min_reblur_psnr=-1.0: expected a PSNR in dB >= 0"),
    ("anchor", 1.0, r"--adapt_anchor=1.0: expected a fraction in \[0, 1\)"),
    ("sharpness_tolerance", -0.1, r"--adapt_sharpness_tolerance=-0.1: expected a relative fall"),
    ("weight_average", 1.0, r"--adapt_weight_average=1.0: expected a decay per step in \[0, 1\)"),
])
def test_bad_settings_name_their_flag(field, value, message):
  with pytest.raises(validation.ConfigError, match=message + r".*; pass a value in range\.$"):
    safeguards.check(safeguards.Safeguards(**{field: value}))


# ----------------------------------------------------------------------------- adapt


@pytest.fixture(scope="module")
def setup(tiny_run):
  """The tiny run's config, variables and an 8-frame 32x32 video's clips."""
  restored = checkpoint.restore_run(tiny_run.workdir)
  variables = {name: restored.variables(name) for name in ("deblur", "flow")}
  frames = synthetic.render_sequence(5, split="test", num_frames=8, height=32,
                                     width=32)["blurry"]
  return restored.config, variables, frames


def _adapt(setup, *, learning_rate, steps, **settings):
  config, variables, frames = setup
  config = adapt.adaptation_config(config, steps=steps, frame_size=(32, 32),
                                   learning_rate=learning_rate, batch_size=2)
  measured = []
  result = adapt.adapt(config, variables, video.Clips(frames, adapt.clip_length(config)),
                       safeguards=safeguards.Safeguards(holdout_every=3, **settings),
                       on_measure=lambda m, v: measured.append((m, v)))
  return result, measured


def _equal(a, b) -> bool:
  return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


def test_adapt_returns_the_weights_of_the_best_held_out_step(setup):
  result, measured = _adapt(setup, learning_rate=1e-2, steps=6, eval_every=1, patience=2,
                            margin=0.0, min_reblur_psnr=0.0, sharpness_tolerance=0.99)
  losses = [m["loss_reblur"] for m, _ in measured]
  assert [m for m, _ in measured] == result.held_out and measured[0][0]["step"] == 0
  best = int(np.argmin(losses))
  assert result.decision.kept_step == measured[best][0]["step"]
  assert result.decision.adapted == (best > 0)
  assert _equal(result.variables, measured[best][1])
  # It stops once `patience` measurements in a row are no better.
  assert len(measured) == 7 or len(measured) - 1 - best == 2


def test_adapt_declines_with_exactly_the_starting_weights(setup):
  _, variables, _ = setup
  # A rate too small to move the held-out error by the margin: adapting could not be told apart.
  result, measured = _adapt(setup, learning_rate=1e-9, steps=2, eval_every=1, patience=5,
                            margin=0.1, min_reblur_psnr=0.0)
  assert not result.decision.adapted and result.decision.steps == 2 and len(measured) == 3
  assert result.variables is variables["deblur"]
  assert "not more than --adapt_margin=0.1" in result.decision.describe()
  # The blur model does not fit (no reblurred frame matches at 99 dB): no step is run.
  result, measured = _adapt(setup, learning_rate=1e-2, steps=2, min_reblur_psnr=99.0)
  assert not result.decision.adapted and result.decision.steps == 0 and len(measured) == 1
  assert result.variables is variables["deblur"] and not result.history


def test_averaged_weights_are_measured_and_kept(setup):
  _, variables, _ = setup
  settings = dict(learning_rate=1e-2, steps=1, eval_every=1, patience=5, margin=0.0,
                  min_reblur_psnr=0.0, sharpness_tolerance=0.99)
  _, plain = _adapt(setup, weight_average=0.0, **settings)
  result, averaged = _adapt(setup, weight_average=0.75, **settings)
  # The same step (same seed), measured a quarter of the way from the start to it.
  expected = jax.tree.map(lambda a, p: 0.75 * a + 0.25 * p, variables["deblur"]["params"],
                          plain[1][1]["params"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               averaged[1][1]["params"], expected)
  assert not _equal(averaged[1][1]["params"], plain[1][1]["params"])
  if result.decision.adapted:
    assert _equal(result.variables, averaged[1][1])
