"""Evaluation: tiled inference, reports and pictures."""
