"""One pass over a run's config before any data is prepared or anything compiled.

`validate_config(config, num_devices)` checks every field with a closed set or a range, that the
data sets are prepared (or are the embedded synthetic set, prepared on first use) and that the
init checkpoints exist and hold the configured networks. Each problem is a `ConfigError` whose
message is one line: what is wrong, what was expected, how to fix it; the commands print it as
`error: <message>`. docs/errors.md lists them.

A new field is one more line in `_FIELD_CHECKS` (a range or a closed set), or a function called
from `check_fields` when it depends on other fields.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

from reblur_jax import blur
from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.data import estimated_flows
from reblur_jax.training import losses
from reblur_jax.training import sharding
from reblur_jax.training import state

TASKS = ("deblur", "flow")
DEBLUR_MODELS = tuple(name for name in models.MODELS if name != "flownets")
FRAMES = (2, 3)
FLOW_GRADIENTS = ("through", "stop")
COMPUTE_DTYPES = ("float32", "bfloat16")
SYNTHETIC = "synthetic_blur"
DATA_GROUPS = ("labeled", "unlabeled", "eval")
UNLABELED_ONLY = "blurry_video"  # Blurry frames only: a U set, never S or evaluation.


class ConfigError(ValueError):
  """A setting the user has to change; the message is the one-line `error:` of the commands."""


class InitCheckpointMismatchError(ConfigError, checkpoint.ModelMismatchError):
  """An init checkpoint holds another model or width than the config describes."""


def fail(field: str, value: Any, expected: str, fix: str) -> ConfigError:
  """`config.<field>=<value>: expected <expected>; <fix>.` as a ConfigError."""
  return ConfigError(f"config.{field}={value!r}: expected {expected}; {fix}.")


# ----------------------------------------------------------------------------- field checks


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
  return _number(value) and int(value) == value


def _in_set(choices: Sequence) -> Callable[[Any], bool]:
  return lambda value: value in choices


# field: (test, expected, example of a valid setting).
_FIELD_CHECKS: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "task": (_in_set(TASKS), f"one of {TASKS}", "task=deblur"),
    "model": (_in_set(DEBLUR_MODELS), f"one of {DEBLUR_MODELS}", "model=dvd"),
    "alpha": (lambda v: _number(v) and v >= 0, "a weight >= 0 (paper: 0.1)", "alpha=0.1"),
    "blur_model": (_in_set(blur.METHODS), f"one of {blur.METHODS}", "blur_model=conv"),
    "flow_gradient": (_in_set(FLOW_GRADIENTS), f"one of {FLOW_GRADIENTS}",
                      "flow_gradient=through"),
    "flow_source": (_in_set(estimated_flows.SOURCES), f"one of {estimated_flows.SOURCES}",
                    "flow_source=tvl1"),
    "reblur_mask": (_in_set(tuple(losses.REBLUR_MASKS)), f"one of {tuple(losses.REBLUR_MASKS)}",
                    "reblur_mask=smooth_motion"),
    "compute_dtype": (_in_set(COMPUTE_DTYPES), f"one of {COMPUTE_DTYPES}",
                      "compute_dtype=bfloat16"),
    "frames": (_in_set(FRAMES), "2 (t, t+1) or 3 (t-1, t, t+1) frames", "frames=3"),
    "tau": (lambda v: _number(v) and v > 0, "an exposure fraction > 0 (paper: 1)", "tau=1.0"),
    "max_disp": (lambda v: _integer(v) and v >= 1, "a flow range >= 1 pixel", "max_disp=16"),
    "blur_samples": (lambda v: _integer(v) and v >= 1, "an integer >= 1", "blur_samples=8"),
    "crop_size": (lambda v: _integer(v) and v >= 8, "a crop side >= 8 pixels", "crop_size=128"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1", "batch_size=16"),
    "unlabeled_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a fraction in [0, 1]",
                           "unlabeled_fraction=0.5"),
    "eval_batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1", "eval_batch_size=8"),
    "num_eval_batches": (lambda v: _integer(v) and (v >= 1 or v == -1),
                         "an integer >= 1, or -1 for the whole split", "num_eval_batches=8"),
    "learning_rate": (lambda v: _number(v) and v > 0, "a rate > 0", "learning_rate=1e-4"),
    "lr_decay_epochs": (lambda v: isinstance(v, (tuple, list)) and all(
        _number(e) and e > 0 for e in v), "a tuple of epochs > 0 (or ())",
                        "lr_decay_epochs='(30, 50)'"),
    "lr_decay_factor": (lambda v: _number(v) and 0 < v <= 1, "a factor in (0, 1]",
                        "lr_decay_factor=0.5"),
    "num_epochs": (lambda v: _number(v) and v > 0, "a number of epochs > 0", "num_epochs=120"),
    "num_train_steps": (lambda v: _integer(v) and (v >= 1 or v == -1),
                        "an integer >= 1, or -1 to use num_epochs", "num_train_steps=1000"),
    "log_every_steps": (lambda v: _integer(v) and v >= 1, "an integer >= 1", "log_every_steps=50"),
    "eval_every_steps": (lambda v: _integer(v) and v >= 1, "an integer >= 1",
                         "eval_every_steps=1000"),
    "checkpoint_every_steps": (lambda v: _integer(v) and v >= 1, "an integer >= 1",
                               "checkpoint_every_steps=1000"),
    "max_to_keep": (lambda v: _integer(v) and v >= 1, "an integer >= 1", "max_to_keep=3"),
    "num_image_summaries": (lambda v: _integer(v) and v >= 0, "an integer >= 0",
                            "num_image_summaries=4"),
    "seed": (_integer, "an integer", "seed=0"),
}


def check_fields(config: ml_collections.ConfigDict) -> None:
  """The fields' own ranges and sets, and the ones that depend on each other; no file access."""
  for field, (test, expected, example) in _FIELD_CHECKS.items():
    if field in config and not test(config[field]):
      raise fail(field, config[field], expected, f"e.g. --config.{example}")
  if config.blur_model == "conv" and config.tau > 1:
    raise fail("tau", config.tau, "at most 1 with blur_model='conv' (its kernel table covers "
               "the flow once)", "lower it, or set --config.blur_model=warp for longer exposures")
  if config.task == "flow" and config.unlabeled_fraction:
    raise fail("unlabeled_fraction", config.unlabeled_fraction,
               "0 with task='flow' (FlowNetS trains on ground-truth flow only)",
               "set --config.unlabeled_fraction=0")
  if config.task == "deblur":
    _check_model("model", config.model, config.model_kwargs)
  if config.task == "flow" or state.uses_flownets(config):
    _check_model("flow_model", "flownets", config.flow_model_kwargs)
  if state.flow_source(config) == "tvl1" and config.finetune_flow:
    raise fail("finetune_flow", config.finetune_flow,
               "False with flow_source='tvl1' (there is no flow network to train)",
               "set --config.finetune_flow=False, or --config.flow_source=flownets")


def _check_model(field: str, name: str, kwargs: ml_collections.ConfigDict) -> None:
  """`<field>_kwargs` build the model: known arguments, `width` > 0, the model's own checks."""
  width = kwargs.get("width", 1.0)
  if not (_number(width) and width > 0):
    raise fail(f"{field}_kwargs.width", width, "a channel multiplier > 0 (1.0: the original)",
               f"e.g. --config.{field}_kwargs.width=1.0")
  try:
    models.create(name, **kwargs)
  except (TypeError, ValueError) as e:  # Unknown argument, or the model's own range check.
    raise ConfigError(f"config.{field}_kwargs={kwargs.to_dict()!r} does not build {name}: "
                      f"{str(e).rstrip('.')}; see docs/models.md for its arguments.") from None


# ----------------------------------------------------------------------------- devices


def batch_sizes(config: ml_collections.ConfigDict) -> dict[str, int]:
  """Global clips per step of each group: `{'labeled': B_S, 'unlabeled': B_U}`."""
  unlabeled = round(config.batch_size * config.unlabeled_fraction)
  return {"labeled": config.batch_size - unlabeled, "unlabeled": unlabeled}


def check_devices(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Each batch part splits evenly over `num_devices`."""
  sizes = batch_sizes(config)
  try:
    sharding.check_divisible(
        {f"labeled batch (batch_size {config.batch_size} x (1 - unlabeled_fraction "
         f"{config.unlabeled_fraction}))": sizes["labeled"],
         f"unlabeled batch (batch_size {config.batch_size} x unlabeled_fraction "
         f"{config.unlabeled_fraction})": sizes["unlabeled"],
         "config.eval_batch_size": config.eval_batch_size}, num_devices)
  except ValueError as e:
    raise ConfigError(str(e)) from None


# ----------------------------------------------------------------------------- files


def used_datasets(config: ml_collections.ConfigDict) -> dict[str, tuple[str, str]]:
  """`{group: (dataset, split)}` of the groups a run reads (evaluation always)."""
  sizes = batch_sizes(config)
  return {group: (config[f"{group}_dataset"], config[f"{group}_split"])
          for group in DATA_GROUPS if group == "eval" or sizes[group]}


def check_dataset(name: str, split: str, data_dir: str | None, *, what: str,
                  data_dir_flag: str = "--config.data_dir") -> None:
  """`name` ("builder/config") is prepared in `data_dir` with `split`, or is preparable here.

  `what` names the setting in the message, e.g. "config.eval_dataset" or "--labeled_dataset";
  `data_dir_flag` the one that says where the data are.
  """
  # Imported here: TFDS and the builders are only needed when a data set is named.
  import tensorflow_datasets as tfds
  from reblur_jax.data import prepare

  builder_name, _, builder_config = name.partition("/")
  where = f"in {data_dir}" if data_dir else "in TFDS's default data_dir"
  if builder_name not in prepare.NAMES:
    raise ConfigError(f"{what}={name!r} is not a data set of this project: expected "
                      f"<name>/<config> with name one of {prepare.NAMES}; see docs/data.md.")
  configs = [c.name for c in tfds.builder_cls(builder_name).BUILDER_CONFIGS]
  if builder_config not in configs:
    raise ConfigError(f"{what}={name!r}: {builder_name} has no config {builder_config!r}; "
                      f"expected one of {configs}, e.g. {builder_name}/{configs[0]}.")
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    if builder_name == SYNTHETIC:
      return  # Generated on first use (training/inputs.py).
    raise ConfigError(
        f"{what}={name!r} is not prepared {where}: prepare it with `python -m "
        f"reblur_jax.data.prepare {builder_name} --config={builder_config} --manual_dir=... "
        f"--data_dir=...` (docs/data.md), or point {data_dir_flag} at where it is.")
  if split not in builder.info.splits:
    raise ConfigError(f"{what}={name!r} has no split {split!r}: expected one of "
                      f"{sorted(builder.info.splits)}; set the matching *_split field.")


def check_init_checkpoints(config: ml_collections.ConfigDict, *,
                           fields: Sequence[str] = ("init_checkpoint", "flow_init_checkpoint")
                           ) -> None:
  """Each set init checkpoint of `fields` is a variables directory holding the configured
  network (those of networks the config does not build are not looked at)."""
  wanted = {}
  if config.task == "deblur":
    wanted["init_checkpoint"] = (models.create(config.model, **config.model_kwargs),
                                 checkpoint.describe(config.model, config.model_kwargs), "deblur")
  if config.task == "flow" or state.uses_flownets(config):
    wanted["flow_init_checkpoint"] = (
        models.create("flownets", **config.flow_model_kwargs),
        checkpoint.describe("flownets", config.flow_model_kwargs), "flow")
  for field, (module, model, network) in wanted.items():
    value = config.get(field) if field in fields else None
    if not value:
      continue
    path = os.path.abspath(os.path.expanduser(value))
    if checkpoint.is_run(path):
      workdir = os.path.dirname(path) if os.path.basename(path).isdigit() else path
      raise fail(field, value, "a variables directory, not a training run",
                 f"pass --config.{field}={os.path.join(workdir, 'variables', network)} (the "
                 "run's exported network)")
    if not os.path.isdir(path):
      raise fail(field, value, "an existing variables directory (<workdir>/variables/"
                 f"{network} of a finished run, or `python -m reblur_jax.models.convert` output)",
                 "fix the path, or set it to '' to start from random weights")
    try:
      shapes = checkpoint.variable_shapes(path)
    except (OSError, ValueError) as e:
      raise fail(field, value, "a readable variables directory", f"it does not open "
                 f"({str(e).splitlines()[0]}); write it again") from None
    try:
      checkpoint.check_variables(module, shapes, source=f"config.{field}: {path}", model=model)
    except checkpoint.ModelMismatchError as e:
      raise InitCheckpointMismatchError(str(e)) from None


# ----------------------------------------------------------------------------- resuming

# Fields a resumed run may change: how long it trains, how often it logs, evaluates and saves,
# what it is evaluated on, and where its files are (the init checkpoints are read at step 0
# only). Any other change would continue one run with another's settings.
RESUMABLE_CHANGES = frozenset({
    "num_train_steps", "num_epochs", "log_every_steps", "eval_every_steps",
    "checkpoint_every_steps", "max_to_keep", "num_image_summaries", "eval_dataset", "eval_split",
    "eval_batch_size", "num_eval_batches", "data_dir", "init_checkpoint",
    "flow_init_checkpoint"})


def check_resume(config: ml_collections.ConfigDict, saved: Mapping[str, Any] | None,
                 workdir: str) -> None:
  """Raises `ConfigError` if `workdir`'s run (`saved`: its checkpoint's config, as
  `checkpoint.saved_config` reads it; None for a new run) was started with other settings than
  `config` outside `RESUMABLE_CHANGES`. Fields one of the two lacks (older code) are not
  compared."""
  if saved is None:
    return
  now = json.loads(json.dumps(config.to_dict()))  # The JSON values a checkpoint stores.
  changed = [f"{field}={saved[field]!r} (now {now[field]!r})"
             for field in sorted(now.keys() & saved.keys())
             if field not in RESUMABLE_CHANGES and now[field] != saved[field]]
  if changed:
    raise ConfigError(
        f"{workdir} holds a run started with other settings ({', '.join(changed)}): expected "
        "its settings to resume it (only the run's length, logging, evaluation and paths may "
        "change); rerun with them, or pass a new --workdir.")


# ----------------------------------------------------------------------------- all


def validate_config(config: ml_collections.ConfigDict, num_devices: int, *,
                    check_files: bool = True) -> None:
  """Raises `ConfigError` for the first setting that cannot run (module docstring).

  Args:
    config: a training config (configs/default.py's fields).
    num_devices: devices the batches are split over.
    check_files: also check the data sets and the init checkpoints (off where a caller
      replaces them, as test-time adaptation does).
  """
  check_fields(config)
  check_devices(config, num_devices)
  if not check_files:
    return
  data_dir = config.data_dir or None
  for group, (name, split) in used_datasets(config).items():
    if group != "unlabeled" and name.partition("/")[0] == UNLABELED_ONLY:
      raise fail(f"{group}_dataset", name, "a labeled set (synthetic_blur, gopro, dvd): "
                 f"{UNLABELED_ONLY} has no sharp frames", "use it as unlabeled_dataset")
    check_dataset(name, split, data_dir, what=f"config.{group}_dataset")
  check_init_checkpoints(config)
