"""The committed thin networks (pretrained/) agree with the command that made them.

`make pretrained` (experiments/pretrained.py) records each run's config and a fingerprint of its
initial parameters in pretrained/manifest.json. If a config, a model or the initialisation changes
without retraining, these tests fail: the files would no longer be what the command makes.
"""

import json
import os

import jax
import numpy as np
import pytest

from experiments import pretrained
from reblur_jax import checkpoint
from reblur_jax.evaluation import networks
from reblur_jax.training import state as state_lib

ROOT = os.path.join(os.path.dirname(__file__), "..", "pretrained")


def _manifest():
  with open(os.path.join(ROOT, checkpoint.MANIFEST)) as f:
    return json.load(f)


def test_every_network_of_the_command_is_committed():
  assert sorted(_manifest()) == sorted(pretrained.NETWORKS)
  for name in pretrained.NETWORKS:
    assert os.path.isdir(os.path.join(ROOT, name)), name


@pytest.mark.parametrize("name", sorted(pretrained.NETWORKS))
def test_committed_files_match_the_command(name):
  entry = _manifest()[name]
  _, stages = pretrained.NETWORKS[name]
  configs = [pretrained.config_for(name, stage) for stage in range(len(stages))]
  assert [json.loads(json.dumps(c.to_dict(), default=list)) for c in configs] == entry["configs"]
  assert entry["steps"] == [c.num_train_steps for c in configs]
  config = configs[0]
  module = state_lib.create_networks(config)["deblur" if config.task == "deblur" else "flow"]
  variables = checkpoint.load_variables(os.path.join(ROOT, name))
  checkpoint.check_variables(module, variables, source=name, model=name)
  # The run started from the seed and initialisation the config gives today.
  np.testing.assert_allclose(pretrained.init_fingerprint(config), entry["init_fingerprint"],
                             rtol=1e-5)


def test_a_shipped_network_restores_as_a_run_with_the_config_it_was_trained_with():
  entry = _manifest()["dvd"]
  run = checkpoint.restore_run(os.path.join(ROOT, "dvd"))
  assert (run.kind, run.step, run.networks) == ("shipped", sum(entry["steps"]), ("deblur",))
  assert run.config.to_dict() == entry["configs"][-1]
  variables = checkpoint.load_variables(os.path.join(ROOT, "dvd"))
  for got, want in zip(jax.tree.leaves(run.variables("deblur")), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(got, want)
  # The deblur command and notebooks open it as they open a training run.
  assert networks.restore(os.path.join(ROOT, "dvd")).model == checkpoint.describe(
      run.config.model, run.config.model_kwargs)
  with pytest.raises(checkpoint.ModelMismatchError, match="holds no deblur network"):
    networks.restore(os.path.join(ROOT, "flownets"))
  with pytest.raises(ValueError, match="pass no step"):
    checkpoint.restore_run(os.path.join(ROOT, "dvd"), step=1)
