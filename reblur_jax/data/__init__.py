"""Data: the synthetic blurry-video generator, TFDS builders and the mixed input pipeline."""
