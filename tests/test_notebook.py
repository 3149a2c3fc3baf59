"""notebooks/restore_and_deblur.ipynb runs top to bottom on the tiny run of conftest.py."""

import os

import nbclient
import nbformat
import pytest

from conftest import REPO, subprocess_env

NOTEBOOK = os.path.join(REPO, "notebooks", "restore_and_deblur.ipynb")


def test_notebook_restores_the_run_and_shows_deblurred_and_reblurred_frames(tiny_run, monkeypatch):
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert any(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
  for key, value in subprocess_env().items():
    monkeypatch.setenv(key, value)  # The kernel inherits this process's environment.
  # The kernel runs in notebooks/: this checkout's package, whatever is installed.
  monkeypatch.setenv("PYTHONPATH",
                     os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
  monkeypatch.setenv("REBLUR_CHECKPOINT", tiny_run.workdir)
  # The kernel's inline backend draws the figure into the cell's output (agg would not).
  monkeypatch.delenv("MPLBACKEND", raising=False)
  nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                          resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()

  text = "".join(output.get("text", "") for cell in notebook.cells
                 for output in cell.get("outputs", []) if output.output_type == "stream")
  assert "Step 2 of a dvd(frames=5, width=0.0625) run with networks ['deblur', 'flow']" in text
  assert "PSNR to the sharp frames: blurry" in text
  assert "PSNR of the reblurred to the blurry frames" in text
  figures = [output for output in notebook.cells[-1].outputs if "image/png" in output.get("data", {})]
  assert len(figures) == 1
