"""TFDS builders of clip datasets (`clips.py`); see docs/data.md for layouts and protocols."""
