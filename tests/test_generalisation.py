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
