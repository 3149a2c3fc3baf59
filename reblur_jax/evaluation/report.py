"""Evaluation reports: per-frame scores summed up per sequence and per data set, as Markdown and
JSON (the layout of the paper's Table 2, one row per sequence).

A report is a plain dict (what `report.json` holds):

    {"checkpoint": path, "step": int, "model": "dvd(frames=5, width=1.0)", "window": n,
     "baseline": path or None, "device": str, "time_per_frame_s": float or None,
     "timing_size": [H, W], "timing_tile": int,
     "datasets": [{"name": "dvd/default_t7", "split": "test30", "frames": 300,
                   "mean": {"blurry": {"psnr": ..., "ssim": ...}, "baseline": ..., "finetuned": ...},
                   "sequences": [{"name": "IMG_0030", "frames": 30, "mean": {...}}, ...],
                   "per_frame": [{"sequence": ..., "frame": ..., "blurry": {...}, ...}, ...]}]}

Means are over frames (a data set's over all its frames, not over its sequences' means).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

# Report columns (keys in the dict) and their titles, in table order.
COLUMNS = {"blurry": "blurry", "baseline": "baseline", "finetuned": "fine-tuned"}
METRICS = ("psnr", "ssim")


def _means(rows: Sequence[dict], columns: Sequence[str]) -> dict[str, dict[str, float]]:
  return {c: {m: float(np.mean([row[c][m] for row in rows])) for m in METRICS} for c in columns}


def summarize(rows: Sequence[dict], *, name: str, split: str) -> dict:
  """One data set's entry from its per-frame rows.

  Args:
    rows: `{"sequence": str, "frame": int, <column>: {"psnr": dB, "ssim": float}, ...}` per
      frame, in data set order; every row has the same columns (of `COLUMNS`).
    name, split: the data set.
  """
  if not rows:
    raise ValueError(f"{name} ({split}): no frames were evaluated.")
  columns = [c for c in COLUMNS if c in rows[0]]
  by_sequence: dict[str, list[dict]] = {}
  for row in rows:
    by_sequence.setdefault(row["sequence"], []).append(row)
  return {
      "name": name, "split": split, "frames": len(rows), "mean": _means(rows, columns),
      "sequences": [{"name": s, "frames": len(r), "mean": _means(r, columns)}
                    for s, r in by_sequence.items()],
      "per_frame": list(rows),
  }


def _cells(mean: dict[str, dict[str, float]]) -> list[str]:
  return [f"{mean[c]['psnr']:.2f} / {mean[c]['ssim']:.4f}" for c in COLUMNS if c in mean]


def to_markdown(report: dict) -> str:
  """The report as Markdown: settings, then one table per data set (PSNR dB / SSIM)."""
  lines = [f"# Evaluation of `{report['checkpoint']}` (step {report['step']})", "",
           f"Network: {report['model']}, reading {report['window']}-frame windows centred on "
           "each frame (replicate-padded at the ends of each sequence).",
           "Baseline: " + (f"`{report['baseline']}` (the variables fine-tuning started from)."
                           if report["baseline"] else "none (the config has no init_checkpoint)."),
           "", "Scores: PSNR (dB) / SSIM of each frame against its sharp frame, the output "
           "clamped to [0, 1] and rounded to 8 bits first; means over frames."]
  if report["time_per_frame_s"] is not None:
    height, width = report["timing_size"]
    how = (f"in {report['timing_tile']}-pixel tiles" if report["timing_tile"]
           else "whole frames")
    lines += ["", f"Time per frame at {width}x{height}: {report['time_per_frame_s']:.3f} s on "
              f"{report['device']} ({how}; the baseline is the same network)."]
  for dataset in report["datasets"]:
    columns = [COLUMNS[c] for c in COLUMNS if c in dataset["mean"]]
    lines += ["", f"## {dataset['name']}, split {dataset['split']}: {dataset['frames']} frames",
              "", "| sequence | frames | " + " | ".join(columns) + " |",
              "|---|--:|" + "--:|" * len(columns),
              "| **mean** | " + " | ".join([str(dataset["frames"])] + _cells(dataset["mean"])) + " |"]
    lines += [f"| {s['name']} | " + " | ".join([str(s["frames"])] + _cells(s["mean"])) + " |"
              for s in dataset["sequences"]]
  return "\n".join(lines) + "\n"


def write(directory: str | os.PathLike, report: dict) -> tuple[str, str]:
  """Writes `report.md` and `report.json` into `directory`; returns their paths."""
  os.makedirs(directory, exist_ok=True)
  markdown = os.path.join(directory, "report.md")
  with open(markdown, "w") as f:
    f.write(to_markdown(report))
  path = os.path.join(directory, "report.json")
  with open(path, "w") as f:
    json.dump(report, f, indent=1)
  return markdown, path
