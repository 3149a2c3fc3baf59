"""Rules that keep test-time adaptation from making a video worse, read without ground truth.

The reblur loss `L_U` a network lowers on the clips it adapts to keeps falling after the
restored frames stop improving (docs/signal_diagnostic.md): the flows and the blur model let it
fit the blurry frames in other ways than by sharpening them. So adaptation keeps some frames of
the video apart and reads the reblur error of the current network on them (`held_out_frames`):

* stopping (`Tracker`): the held-out error is measured every `eval_every` steps; the weights of
  the best measurement are kept, and adaptation stops after `patience` measurements without a
  better one. A measurement only counts when the held-out restored frames are not blurrier than
  the starting network's (mean absolute gradient, `sharpness_tolerance`): with flows as wrong as
  the motion is large, the reblur error is lowered most by blurrier output, and on the
  validation sequences held-out `L_U` fell 4-18% in 40 steps while PSNR and sharpness fell with
  it (docs/adaptation.md);
* declining (`decide`): the starting weights are returned unless the best held-out error is below
  the starting one by a relative `margin`, or at once, before any step, when the starting
  network's reblurred frames match the blurry ones at less than `min_reblur_psnr` dB (the blur
  model does not explain this video's blur, and its loss would mislead);
* anchoring (`anchor`): after each optimiser step the deblur parameters move back a fraction
  `anchor` of the way to the starting ones (an L2 pull to the start, decoupled from Adam's
  scaling as AdamW decouples weight decay);
* averaging (`weight_average`): the weights measured and kept are an exponential moving average
  of the deblur parameters over the steps, not the last step's: at a constant rate the iterates
  scatter around what the video and the labeled clips ask for, and one step's batch moves PSNR
  by tenths of a dB (docs/adaptation.md).

Everything here is pure; `adapt.adapt` applies it. The module imports no JAX, so that the
`deblur` command can show these defaults in `--help` at once.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Safeguards:
  """The settings, each a `deblur --adapt_<name>` flag (docs/evaluation.md).

  Attributes:
    holdout_every: every this many-th frame of the video is held out of adaptation and measured.
    max_held_out: at most this many held-out frames (evenly spread), to bound each measurement.
    eval_every: optimiser steps between measurements of the held-out reblur error.
    patience: measurements without a better held-out error before adaptation stops.
    margin: relative drop of the held-out error below the starting network's needed to keep the
      adapted weights (0.01: 1% lower); otherwise the starting weights are returned.
    min_reblur_psnr: decline before adapting when the starting network's held-out reblurred
      frames have a PSNR to the blurry ones below this (dB); 0 never declines on it.
    anchor: fraction of the way back to the starting parameters after each step (0: none).
    sharpness_tolerance: relative fall of the held-out restored frames' sharpness (mean absolute
      gradient) below the starting network's that a measurement may have and still count.
    weight_average: decay per step of the moving average of the parameters that are measured and
      kept (0: the last step's).
  """
  holdout_every: int = 4
  max_held_out: int = 8
  eval_every: int = 10
  patience: int = 3
  margin: float = 0.01
  min_reblur_psnr: float = 27.0
  anchor: float = 0.0
  sharpness_tolerance: float = 0.0
  # Adapting pretrained/dvd with labeled clips: +0.88 dB mean on validation videos blurred like
  # real ones and +0.36 on the study's (worst +0.52, +0.25) at 0.9, against +0.81 and +0.27
  # (worst +0.29, +0.18) without averaging (docs/adaptation.md).
  weight_average: float = 0.9


def check(safeguards: Safeguards) -> None:
  """Raises `validation.ConfigError` naming the `deblur` flag of the first bad setting."""
  from reblur_jax.training import validation  # pylint: disable=g-import-not-at-top
  s = safeguards
  checks = [("holdout_every", s.holdout_every >= 2, "an integer >= 2 (every k-th frame held out)"),
            ("max_held_out", s.max_held_out >= 1, "a frame count >= 1"),
            ("eval_every", s.eval_every >= 1, "a step count >= 1"),
            ("patience", s.patience >= 1, "a count of measurements >= 1"),
            ("margin", 0 <= s.margin < 1, "a relative drop in [0, 1)"),
            ("min_reblur_psnr", s.min_reblur_psnr >= 0, "a PSNR in dB >= 0 (0: never decline)"),
            ("anchor", 0 <= s.anchor < 1, "a fraction in [0, 1) (0: no anchoring)"),
            ("sharpness_tolerance", 0 <= s.sharpness_tolerance < 1, "a relative fall in [0, 1)"),
            ("weight_average", 0 <= s.weight_average < 1,
             "a decay per step in [0, 1) (0: no averaging)")]
  for name, ok, expected in checks:
    if not ok or (isinstance(getattr(s, name), float) and not math.isfinite(getattr(s, name))):
      raise validation.ConfigError(f"--adapt_{name}={getattr(s, name)}: expected {expected}; "
                                   "pass a value in range.")


def held_out_frames(num_frames: int, every: int, max_count: int) -> tuple[list[int], list[int]]:
  """`(adapted, held_out)` frame indices of a `num_frames` video: every `every`-th frame from
  `every // 2` held out (at most `max_count`, evenly spread), the others adapted to.

  A video too short to keep one frame on each side holds none out.
  """
  held = list(range(every // 2, num_frames, every))
  if len(held) > max_count:
    held = [held[i] for i in np.linspace(0, len(held) - 1, max_count).round().astype(int)]
  if len(held) >= num_frames:
    held = []
  return [i for i in range(num_frames) if i not in set(held)], held


@dataclasses.dataclass
class Tracker:
  """The best held-out measurement so far, and whether to stop.

  `update(step, loss, sharpness)` records a measurement and says whether it is the new best:
  strictly lower than every earlier one, with a sharpness at least `1 - sharpness_tolerance`
  times the first measurement's; `stop` is true after `patience` measurements in a row that
  were not.
  """
  patience: int
  sharpness_tolerance: float = 0.0
  best_step: int = -1
  best_loss: float = math.inf
  initial_loss: float = math.nan
  initial_sharpness: float = math.nan
  since_best: int = 0
  blurrier: int = 0
  measurements: list[tuple[int, float, float]] = dataclasses.field(default_factory=list)

  def update(self, step: int, loss: float, sharpness: float) -> bool:
    if not self.measurements:
      self.initial_loss, self.initial_sharpness = loss, sharpness
    self.measurements.append((step, loss, sharpness))
    sharp_enough = sharpness >= self.initial_sharpness * (1 - self.sharpness_tolerance)
    self.blurrier += not sharp_enough
    if loss < self.best_loss and sharp_enough:
      self.best_step, self.best_loss, self.since_best = step, loss, 0
      return True
    self.since_best += 1
    return False

  @property
  def stop(self) -> bool:
    return self.since_best >= self.patience


@dataclasses.dataclass(frozen=True)
class Decision:
  """What the safeguards did: `adapted` (the returned weights are adapted ones), `steps` run,
  `kept_step` (the step whose weights are returned, 0 for the starting ones), and why."""
  adapted: bool
  steps: int
  kept_step: int
  reason: str

  def describe(self) -> str:
    if self.adapted:
      return f"adapted: kept step {self.kept_step} of {self.steps} steps run ({self.reason})"
    return f"declined: kept the starting weights after {self.steps} steps ({self.reason})"


def decline_before(initial_psnr_reblur: float, min_reblur_psnr: float) -> Decision | None:
  """A decision not to adapt at all when the blur model does not reproduce the video's blur."""
  if initial_psnr_reblur < min_reblur_psnr:
    return Decision(False, 0, 0, f"the starting network's reblurred frames match the blurry ones "
                    f"at {initial_psnr_reblur:.2f} dB < --adapt_min_reblur_psnr="
                    f"{min_reblur_psnr:g}: the blur model does not fit this video")
  return None


def decide(tracker: Tracker, steps: int, margin: float, *, stopped: bool) -> Decision:
  """Keep the best held-out step if it beats the starting error by the relative `margin`."""
  initial, best = tracker.initial_loss, tracker.best_loss
  change = (initial - best) / initial if initial > 0 else 0.0
  how = (f"stopped early, no better held-out L_U in {tracker.patience} measurements"
         if stopped else "ran all steps")
  if tracker.blurrier:
    how += (f"; {tracker.blurrier} of {len(tracker.measurements) - 1} measurements blurrier than "
            f"the start by more than --adapt_sharpness_tolerance={tracker.sharpness_tolerance:g}")
  if tracker.best_step > 0 and change > margin:
    return Decision(True, steps, tracker.best_step,
                    f"{how}; held-out L_U {initial:.4g} -> {best:.4g}, {100 * change:.1f}% lower")
  return Decision(False, steps, 0, f"{how}; held-out L_U fell {100 * max(change, 0.0):.1f}% "
                  f"({initial:.4g} -> {best:.4g}), not more than --adapt_margin={margin:g}")
