"""Data: the synthetic blurry-video generator, TFDS builders and the mixed input pipeline.

Importing this package registers the TFDS builders `synthetic_blur`, `gopro`, `dvd` and
`blurry_video` (docs/data.md), so that `tfds.data_source("synthetic_blur/tiny", ...)` finds them.
"""

from reblur_jax.data.builders import blurry_video as _blurry_video
from reblur_jax.data.builders import dvd as _dvd
from reblur_jax.data.builders import gopro as _gopro
from reblur_jax.data.builders import synthetic_blur as _synthetic_blur

del _blurry_video, _dvd, _gopro, _synthetic_blur
