"""Training configurations, one per run of the paper (`python train.py --config=configs/<run>.py`).

A package installed with `reblur_jax` (pyproject.toml), so that scripts and benchmarks import
them (`from configs import dvd_reblur`) from anywhere.
"""
