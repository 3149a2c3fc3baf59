"""docs/results.md's tables and verdicts follow the measurements (experiments/results_report.py).

The study itself (`make reproduce`) takes about 47 minutes; here its measurements are made up so that each
claim's rule is seen to hold and to fail.
"""

import json
import os

import pytest

from configs import dvd_reblur
from experiments import reproduce
from experiments import results_report
from reblur_jax.training import validation


def _scores(psnr):
  return {"psnr": psnr, "ssim": 0.8 + 0.01 * (psnr - 25.0)}  # SSIM rises with PSNR.


def _finetune(baseline, finetuned, **settings):
  settings = {"flow_source": "tvl1", "alpha": 3.0, "learning_rate": 1e-3,
              "labeled_dataset": "synthetic_blur/study_mixed_t7", "reblur_mask": "none",
              **settings}
  return {"mean": {"blurry": _scores(24.0), "baseline": _scores(baseline),
                   "finetuned": _scores(finetuned)},
          "curve": [[0, baseline], [100, finetuned]],
          "per_frame": [], "settings": settings}


def _results(*, reblur=26.0, control=25.5, warp=25.98, warp_seconds=0.5, single=25.0,
             group=25.2, two_frames=25.3):
  results = {"scale": "cpu", "settings": reproduce.dataclasses.asdict(reproduce.SCALES["cpu"]),
             "device": "CPU: test", "wall_seconds": {"flownets": 60.0, "dvd_reblur": 120.0},
             "data": {"name": "synthetic_blur/study_t7", "size": 96, "frames": 16,
                      "train_sequences": 24, "test_sequences": 6, "train_speed": 12.0,
                      "test_speed": 18.0, "clips": {"train": 384, "test": 96}},
             "flownets": {"epe": 2.0}}
  for network in ("dvd", "deblurgan"):
    results[f"{network}_reblur"] = _finetune(
        25.0, reblur, reblur_mask="smooth_motion" if network == "dvd" else "none",
        crop_size=96 if network == "dvd" else 64)
    results[f"{network}_alpha0"] = _finetune(25.0, control)
    results[f"{network}_warp"] = _finetune(25.0, warp)
  results["step_seconds"] = {"steps": 10, "runs": {
      run: 1.0 if run.endswith("_reblur") else warp_seconds for run in reproduce.TIMED}}
  results["dvd_2frames"] = _finetune(25.0, two_frames)
  results["dvd_tau1"] = _finetune(25.0, 25.9)
  paper = {"flow_source": "flownets", "alpha": 0.1, "learning_rate": 1e-4}
  results["dvd_paper"] = _finetune(25.0, 25.2, **paper)
  results["dvd_paper_alpha0"] = _finetune(25.0, 25.3, **{**paper, "alpha": 0.0})
  results["signal_diagnostic"] = {
      "flow_model": "flownets(width=0.25) from a variables directory",
      "flow_checkpoint": "pretrained/flownets", "sequences": 4, "frames": 1, "size": 96,
      "max_speed": 18.0, "learning_rate": 1e-3, "steps": [0, 100],
      # As read back from results.json: steps as strings, pairs as lists.
      "rows": [{"label": "true flows, tau matched", "tau": 0.5, "epe": [0.0, 0.0],
                "loss": [6e-4, 4e-5], "psnr": {"0": 26.5, "100": 27.3}},
               {"label": "FlowNetS recomputed on x", "tau": 0.5,
                "epe": [[2.9, 3.7], [3.0, 3.9]], "loss": [3e-4, 5e-6],
                "psnr": {"0": 26.5, "100": 26.1}}]}
  results["table4"] = {"frames": [1, 2, 3, 4, 5], "baseline": [_scores(24.0)] * 5,
                       "single": [_scores(single)] * 5, "group": [_scores(group)] * 5}
  return results


FIGURES = {"curves": "/docs/images/curves.png",
           "dvd_reblur": {"best": "/docs/images/b.png", "worst": "/docs/images/w.png"},
           "deblurgan_reblur": {"best": "/docs/images/b2.png", "worst": "/docs/images/w2.png"}}


BALANCE = {run: {"loss_supervised_first": 2e-3, "loss_reblur_first": 1e-3,
                  "psnr_reblur_first": 31.0, "loss_supervised_last": 1e-3,
                  "loss_reblur_last": 5e-4, "psnr_reblur_last": 33.0}
           for run in ("dvd_reblur", "deblurgan_reblur")}


def _verdicts(text):
  return [line for line in text.splitlines() if "reproduced**" in line]


def test_every_claim_reproduced_when_the_numbers_say_so():
  text = results_report.markdown(_results(), FIGURES, "/docs", BALANCE)
  verdicts = _verdicts(text)
  assert len(verdicts) == 2 + 2 + 1 + 1
  assert all("**reproduced**" in line for line in verdicts)
  assert ("| **DVD-Reblur** (TV-L1 flows, L_U away from motion boundaries, alpha 3, lr 0.001) | "
          "26.00 / 0.8100 | +1.00 dB | 26.06 / 30.15 / 30.32 |") in text
  assert "| **DeblurGAN-Reblur** (TV-L1 flows, alpha 3, lr 0.001) |" in text
  # The paper's settings, beside the method the :cpu configs chose on validation.
  assert ("| DVD-Reblur, the paper's settings (FlowNetS, alpha 0.1, lr 0.0001) | 25.20 / 0.8020 "
          "| +0.20 dB | |") in text
  assert "- DVD at the paper's settings: -0.10 dB over its control." in text
  assert "the thin networks shipped in `pretrained/`" in text and "test EPE 2.00 px" in text
  assert "![PSNR against fine-tuning steps](images/curves.png)" in text
  assert "test split 6 sequences (96 clips, U and evaluation)" in text
  assert "trained on 64-pixel crops (DVD's fine-tuning on whole 96-pixel frames), batch 8" in text
  assert "S: the train split of the set each baseline last trained on, " in text
  # alpha * L_U = 3e-3 against L_S = 2e-3: 60% of the loss.
  assert "alpha * L_U was 60% of the loss" in text
  assert "the alpha = 0 control gained +0.50 dB" in text
  # DVD variants 26.0 (conv), 25.98 (warp), 25.3 (2 frames), 25.9 (tau 1); control 25.5.
  assert "their PSNRs span 0.70 dB, against the +0.50 dB" in text
  assert "two frames (-0.20 dB) end below the control" in text
  # The signal diagnostic's table and the command that makes it alone.
  assert "| true flows, tau matched | 0.5 | 0.00 / 0.00 | 6.00 -> 0.40 | 26.50 | **27.30** |" in text
  assert ("| FlowNetS recomputed on x | 0.5 | 2.90 / 3.70 -> 3.00 / 3.90 | 3.00 -> 0.05 | "
          "26.50 | 26.10 |") in text  # Never bold at step 0, the blurry frame.
  assert ("`python -m experiments.signal_diagnostic --flow_checkpoint=pretrained/flownets`"
          in text)


@pytest.mark.parametrize("change, failing", [
    ({"control": 25.98}, "over the control"),    # no better than alpha = 0: not the reblur signal
    ({"warp": 25.7}, "warp - conv"),             # warp loses quality
    ({"warp_seconds": 0.98}, "warp - conv"),     # warp not faster
    ({"group": 24.8}, "group - individual"),
    ({"two_frames": 25.98}, "3 - 2 frames"),
])
def test_a_claim_fails_when_its_rule_does(change, failing):
  verdicts = _verdicts(results_report.markdown(_results(**change), FIGURES, "/docs", BALANCE))
  failed = [line for line in verdicts if "not reproduced" in line]
  assert failed and all(failing in line for line in failed)


@pytest.mark.parametrize("scale_name", sorted(reproduce.SCALES))
def test_every_fine_tuning_of_the_study_is_a_valid_config(scale_name):
  scale = reproduce.SCALES[scale_name]
  for name in reproduce.finetunes(scale):
    validation.validate_config(reproduce.finetune_config(name, scale, "/runs/study"), 1,
                               check_files=False)


def test_the_cpu_study_fine_tunes_the_shipped_networks_as_the_demo_does():
  scale = reproduce.SCALES["cpu"]
  config = reproduce.finetune_config("dvd_reblur", scale, "/runs/study")
  demo = dvd_reblur.get_config("cpu")
  for field in reproduce.RECORDED + ("crop_size", "batch_size", "num_train_steps",
                                     "labeled_dataset", "unlabeled_dataset", "unlabeled_split"):
    assert config[field] == demo[field], field
  assert config.init_checkpoint == "pretrained/dvd"
  paper = reproduce.finetune_config("dvd_paper", scale, "/runs/study")
  assert (paper.flow_source, paper.alpha, paper.learning_rate, paper.reblur_mask) == (
      "flownets", 0.1, 1e-4, "none")
  assert "dvd_paper" not in reproduce.finetunes(reproduce.SCALES["gpu"])  # Already the method.


def test_a_rerun_measures_again_runs_that_were_shorter_and_refuses_other_settings(monkeypatch):
  scale, workdir = reproduce.SCALES["cpu"], "/runs/study"
  saved = {name: json.loads(json.dumps(reproduce.finetune_config(name, scale, workdir).to_dict()))
           for name in reproduce.finetunes(scale)}
  saved["dvd_alpha0"]["num_train_steps"] //= 2
  monkeypatch.setattr(reproduce.checkpoint, "saved_config",
                      lambda run_dir: saved[os.path.basename(run_dir)])
  results = {name: {"mean": {}} for name in saved}
  reproduce._check_runs(results, scale, workdir)
  assert sorted(results) == sorted(set(saved) - {"dvd_alpha0"})
  saved["dvd_warp"]["tau"] = 1.0
  with pytest.raises(validation.ConfigError, match=r"^/runs/study/dvd_warp holds a run started "
                                                   r"with other settings \(tau=1.0 \(now 0.5\)\)"):
    reproduce._check_runs(results, scale, workdir)
