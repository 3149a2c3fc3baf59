"""The generalisation report: motion per frame and the tables it splits by it."""

import numpy as np

from experiments import generalisation
from reblur_jax.data.builders import synthetic_blur


def test_fastest_motion_is_the_largest_flow_to_either_neighbour():
  flow_next = np.zeros((2, 4, 4, 2), np.float32)
  flow_prev = np.zeros((2, 4, 4, 2), np.float32)
  flow_next[0, 1, 2] = (3.0, 4.0)
  flow_prev[1, 0, 0] = (-6.0, 8.0)
  motion = generalisation.fastest_motion({"flow_next": flow_next, "flow_prev": flow_prev})
  np.testing.assert_allclose(motion, [5.0, 10.0])


def test_tables_split_frames_at_the_training_bound():
  def sequence(name, motion, blurry, restored):
    n = len(motion)
    return {"name": name, "motion": np.array(motion),
            "scores": {"blurry": np.stack([np.full(n, blurry), np.ones(n)]),
                       "net": np.stack([np.full(n, restored), np.ones(n)])}}
  results = [sequence("a", [5.0, 11.0], 20.0, 24.0), sequence("b", [13.0], 18.0, 19.0)]
  text = generalisation.tables(results, results, ["blurry", "net"], bound=12.0)
  lines = text.splitlines()
  assert "| a | 11.0 | 20.00 / 1.0000 | 24.00 / 1.0000 |" in lines
  assert "| fastest motion <= 12 px (trained range) | 2 | 20.00 / 1.0000 | 24.00 / 1.0000 |" in lines
  assert "| fastest motion > 12 px (faster than training) | 1 | 18.00 / 1.0000 | 19.00 / 1.0000 |" in lines
  assert "| all | 3 | 19.33 / 1.0000 | 22.33 / 1.0000 |" in lines


def test_builder_config_by_name():
  assert synthetic_blur.builder_config("study_t7").clip_length == 7
  assert synthetic_blur.builder_config("study").max_speed == 12.0


class _Identity:
  """A stand-in network that returns its input frames."""

  def deblur(self, blurry):
    return blurry


def test_measure_renders_the_chosen_scenes_at_the_chosen_speed():
  config = synthetic_blur.builder_config("tiny")
  slow, fast = (generalisation.measure({"identity": _Identity()}, config, "train",
                                       linear_light=False, seeds=[100], max_speed=speed)[0]
                for speed in (1.0, 12.0))
  assert slow["name"] == fast["name"] == "train_100"
  assert slow["motion"].max() < fast["motion"].max()
  # Slower motion, less blur: the blurry frames are closer to the sharp ones.
  assert slow["scores"]["blurry"][0].mean() > fast["scores"]["blurry"][0].mean()
  np.testing.assert_array_equal(slow["scores"]["identity"], slow["scores"]["blurry"])


def test_seeds_flag_reads_a_range():
  assert generalisation._seeds("200-211") == range(200, 212)
  assert generalisation._seeds("5") == range(5, 6)
  assert generalisation._seeds(None) is None
