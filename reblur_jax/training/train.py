"""The training loop: `train_and_evaluate(config, workdir)`, driven by an ml_collections config.

The steps a reader expects, in order: check the config against the devices, build the networks
and the input pipeline, create (or resume) the replicated train state, then loop: global batch,
data-parallel step, metrics, evaluation, checkpoint. `configs/` holds the runs of the paper.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
import tqdm
from absl import logging

from reblur_jax import checkpoint
from reblur_jax import disk
from reblur_jax.training import inputs
from reblur_jax.training import losses
from reblur_jax.training import optim
from reblur_jax.training import sharding
from reblur_jax.training import state as state_lib
from reblur_jax.training import step as step_lib
from reblur_jax.training import summaries
from reblur_jax.training import validation

PyTree = Any
VARIABLES_DIR = "variables"  # <workdir>/variables/<network>: the final networks, for init/eval.


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or inf; no checkpoint after the last good one was written.

  Attributes:
    step: the first step whose loss is not finite.
    loss: that loss.
  """

  def __init__(self, message: str, *, step: int, loss: float):
    super().__init__(message)
    self.step, self.loss = step, loss


# ----------------------------------------------------------------------------- config checks


def clip_length(config: ml_collections.ConfigDict, networks: dict) -> int:
  """Frames per clip the steps need: the deblur window, plus t-1 and t+1 when FlowNetS reblurs;
  with fixed flows (`flow_source="tvl1"`), at least t-1, t, t+1 to estimate them from."""
  if "deblur" not in networks:
    return 3  # Flow pairs (t+1, t) and (t-1, t).
  frames = networks["deblur"].num_input_frames
  if "flow" in networks:
    return frames + 2
  return max(frames, 3) if config.unlabeled_fraction > 0 else frames


# ----------------------------------------------------------------------------- the run's pieces


@dataclasses.dataclass(frozen=True)
class Run:
  """What the loop needs, built once per process.

  Attributes:
    networks: the flax modules, `{'deblur': d, 'flow': f}` as the task uses them.
    state: the step-0 train state, replicated over the mesh.
    train_step: `(state, global batch) -> (state, metrics)`, jitted, state donated.
    eval_step: `(state, global batch) -> (metrics, images)`, jitted.
    clip_length: frames per clip the steps expect.
  """
  networks: dict
  state: state_lib.TrainState
  train_step: Callable
  eval_step: Callable
  clip_length: int


def create_run(config: ml_collections.ConfigDict, networks: dict, mesh: jax.sharding.Mesh, *,
               steps_per_epoch: int, variables: dict[str, PyTree] | None = None) -> Run:
  """Builds the optimiser, the initial state and the data-parallel steps of `networks`.

  `variables` (`{name: {'params', 'batch_stats'?}}` per network) are the starting weights; None:
  the config's init checkpoints, else random (`state.init_variables`).
  """
  trainable = state_lib.trainable_networks(config, networks)
  schedule = optim.learning_rate_schedule(
      config.learning_rate, decay_epochs=config.lr_decay_epochs,
      decay_factor=config.lr_decay_factor, steps_per_epoch=steps_per_epoch)
  optimizer = optim.create_optimizer(schedule)
  if variables is None:
    variables = state_lib.init_variables(networks, config)
  initial = state_lib.create_train_state(variables, trainable, optimizer,
                                         jax.random.PRNGKey(config.seed))
  initial = jax.device_put(initial, sharding.replicated(mesh))

  settings = losses.LossSettings.from_config(config)
  loss_fn = functools.partial(step_lib.LOSSES[config.task], networks=networks, settings=settings)
  train_step = functools.partial(step_lib.train_step, loss_fn=loss_fn, optimizer=optimizer,
                                 schedule=schedule, trainable=trainable)
  eval_step = functools.partial(step_lib.EVALS[config.task], networks=networks, settings=settings,
                                num_images=config.num_image_summaries)
  return Run(
      networks=networks, state=initial,
      train_step=sharding.data_parallel(train_step, mesh, batch_argnums=(1,),
                                        donate_argnums=(0,)),
      eval_step=sharding.data_parallel(eval_step, mesh, batch_argnums=(1,)),
      clip_length=clip_length(config, networks))


def num_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return max(1, math.ceil(config.num_epochs * steps_per_epoch))


def abstract_state(state: PyTree) -> PyTree:
  """Shapes, dtypes and shardings of `state`, the target a checkpoint is restored into."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                      state)


# ----------------------------------------------------------------------------- evaluation


def eval_metrics(run: Run, state: state_lib.TrainState, batches: Iterable[PyTree],
             mesh: jax.sharding.Mesh) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Mean metrics over the eval batches, and the first batch's images (host arrays)."""
  totals, images, count = {}, None, 0
  for host_batch in batches:
    metrics, batch_images = run.eval_step(state, sharding.global_batch(host_batch, mesh))
    metrics = jax.device_get(metrics)
    totals = {name: totals.get(name, 0.0) + float(value) for name, value in metrics.items()}
    images = images if images is not None else jax.device_get(batch_images)
    count += 1
  if not count:
    raise ValueError("the evaluation split gave no batch: check config.eval_dataset, "
                     "config.eval_split and config.eval_batch_size.")
  return {name: total / count for name, total in totals.items()}, images


def _write_eval(writer, step: int, metrics: dict[str, float], images: dict[str, np.ndarray]):
  writer.write_scalars(step, {f"eval/{name}": value for name, value in metrics.items()})
  if images:
    name, grid = summaries.image_grid(images)
    writer.write_images(step, {f"eval/{name}": grid})


# ----------------------------------------------------------------------------- the loop


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike) -> state_lib.TrainState:
  """Trains per `config`, resuming from `workdir`'s newest checkpoint if there is one.

  Writes TensorBoard summaries and checkpoints under `workdir`, and at the end each network's
  variables to `<workdir>/variables/<name>` (the format of `config.init_checkpoint`).

  Returns:
    The final train state.

  Raises:
    validation.ConfigError: a setting that cannot run, or that differs from the settings the
      run in `workdir` was started with; found before any work.
    NonFiniteLossError: the loss became NaN/inf; the message names the step and the last good
      checkpoint.
    disk.DiskFullError: no space left while checkpointing; the message names the last complete
      checkpoint.
  """
  workdir = os.path.abspath(os.fspath(workdir))
  validation.check_resume(config, checkpoint.saved_config(workdir), workdir)
  mesh, data, run = set_up(config)
  steps_per_epoch = data.steps_per_epoch
  total_steps = num_train_steps(config, steps_per_epoch)
  logging.info("Training %s on %d device(s) of %d process(es): %d steps of %s clips "
               "(%d steps per epoch).", config.task, jax.device_count(), jax.process_count(),
               total_steps, validation.batch_sizes(config), steps_per_epoch)

  manager = checkpoint.create_manager(workdir, max_to_keep=config.max_to_keep)
  train_iter = data.train_iterator()
  state = checkpoint.restore_latest(manager, abstract_state(run.state), train_iter)
  if state is None:
    state = run.state
  start = int(jax.device_get(state.step))
  if start:
    logging.info("Resumed from step %d of %s.", start, manager.directory)

  writer = summaries.create_writer(workdir)
  if start == 0:
    writer.write_hparams(_flat_config(config))
    _write_eval(writer, 0, *eval_metrics(run, state, data.eval_batches(), mesh))

  # Imported here: clu.periodic_actions imports TensorFlow (via its writers), which the modules
  # that reuse this one's pieces (test-time adaptation, the deblur command) do not need.
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top
  report = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=writer)
  cadence = (config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
  try:
    for point in loop(run.train_step, state, train_iter, mesh, start=start, total=total_steps,
                      pause=lambda step: any(step % every == 0 for every in cadence),
                      on_step=report):
      state, step = point.state, point.step
      log, evaluate_now, save = (point.last or step % every == 0 for every in cadence)
      if log:
        writer.write_scalars(step, {f"train/{k}": v for k, v in point.metrics.mean().items()})
        point.bar.set_postfix(loss=f"{float(point.step_metrics['loss']):.4g}")
      if evaluate_now:
        with report.timed("eval"):
          _write_eval(writer, step, *eval_metrics(run, state, data.eval_batches(), mesh))
      if save:
        with report.timed("checkpoint"):
          checkpoint.save(manager, state, train_iter, config)
  except NonFiniteLossError as e:
    raise _non_finite(e.step, e.loss, manager) from None
  except Exception as e:
    if disk.is_disk_full(e):  # A failed async save surfaces at the next one.
      raise _disk_full(manager) from e
    raise
  finally:
    _wait_for_saves(manager)
    writer.flush()
  export_variables(state, os.path.join(workdir, VARIABLES_DIR))
  return state


def evaluate(config: ml_collections.ConfigDict) -> dict[str, float]:
  """The eval metrics of the config's starting networks (its init checkpoints), untrained.

  What `train_and_evaluate` logs at step 0, without a workdir: e.g. a shipped network's score on
  another split.
  """
  mesh, data, run = set_up(config)
  return eval_metrics(run, run.state, data.eval_batches(), mesh)[0]


def set_up(config: ml_collections.ConfigDict
           ) -> tuple[jax.sharding.Mesh, inputs.Inputs, Run]:
  """Checks the config (before any work), then builds the mesh, the data and the run."""
  validation.validate_config(config, jax.device_count())
  mesh = sharding.create_mesh()
  networks = state_lib.create_networks(config)
  data = inputs.create(config, clip_length(config, networks), validation.batch_sizes(config))
  return mesh, data, create_run(config, networks, mesh, steps_per_epoch=data.steps_per_epoch)


def time_step(run: Run, batch: PyTree, *, steps: int = 10) -> tuple[float, float]:
  """`(seconds of the first step, seconds of the fastest of the next `steps`)` of
  `run.train_step` on one global batch (`sharding.global_batch`), each step waited for.

  The step alone: no input pipeline, evaluation or checkpoint in the time. The first step
  includes compilation. The fastest step is the one least slowed by other work on the machine
  (on shared CPU cores medians moved by 15% between runs). Consumes `run.state` (the step
  donates it).
  """
  state, times = run.state, []
  for _ in range(steps + 1):
    start = time.perf_counter()
    state, metrics = run.train_step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return times[0], min(times[1:])


@dataclasses.dataclass(frozen=True)
class LoopPoint:
  """Where `loop` hands control back to its caller.

  Attributes:
    step: optimiser steps taken; `state` is the state after them.
    state: the train state (device arrays).
    last: whether this is the loop's last step.
    metrics: the steps' metrics since the caller last took `metrics.mean()`, on the host and
      finite.
    step_metrics: this step's metrics (device arrays).
    bar: the progress bar, e.g. for `bar.set_postfix`.
  """
  step: int
  state: state_lib.TrainState
  last: bool
  metrics: summaries.StepMetrics
  step_metrics: dict[str, jax.Array]
  bar: tqdm.tqdm


def loop(train_step: Callable, state: state_lib.TrainState, batches: Iterator[PyTree],
         mesh: jax.sharding.Mesh, *, start: int, total: int, pause: Callable[[int], bool],
         desc: str = "train", on_step: Callable[[int], Any] | None = None
         ) -> Iterator[LoopPoint]:
  """The optimiser steps `start + 1 .. total` of training or adaptation, as a generator.

  Each step takes the next host batch of `batches`, runs `train_step` on the mesh and buffers its
  metrics on the device. After the steps where `pause(step)` holds, and after the last, the
  buffered metrics are read (a non-finite loss raises before anything else happens) and the
  loop yields a `LoopPoint`: the caller logs, evaluates or saves there, and stops early by
  leaving the `for`.

  Raises:
    NonFiniteLossError: a step's loss is NaN or inf (its `step` and `loss` say which).
  """
  pending = summaries.StepMetrics()
  with tqdm.tqdm(total=total, initial=start, desc=desc, unit="step",
                 disable=jax.process_index() != 0, dynamic_ncols=True) as bar:
    for step in range(start + 1, total + 1):
      with jax.profiler.StepTraceAnnotation(desc, step_num=step):
        batch = sharding.global_batch(next(batches), mesh)
        state, metrics = train_step(state, batch)
      pending.add(step, metrics)
      if on_step is not None:
        on_step(step)
      bar.update()
      last = step == total
      if last or pause(step):
        bad = pending.fetch()
        if bad is not None:
          raise NonFiniteLossError(f"the loss is {bad[1]} at step {bad[0]}", step=bad[0],
                                   loss=bad[1])
        yield LoopPoint(step=step, state=state, last=last, metrics=pending,
                        step_metrics=metrics, bar=bar)


def _wait_for_saves(manager) -> None:
  try:
    manager.wait_until_finished()
  except Exception as e:
    if disk.is_disk_full(e):
      raise _disk_full(manager) from e
    raise


def _disk_full(manager) -> disk.DiskFullError:
  try:
    manager.close()
  except Exception:  # noqa: BLE001  The same failure again, which this error reports.
    pass
  # Orbax's writers of the failed save's other items still run; left to interpreter exit, they
  # fail loudly after this error's message.
  deadline = time.monotonic() + 30
  for thread in threading.enumerate():
    if type(thread).__module__.startswith("orbax"):
      thread.join(timeout=max(0.0, deadline - time.monotonic()))
  # Steps as on disk: the failed save never became one.
  steps = [int(p.name) for p in manager.directory.iterdir() if p.name.isdigit()]
  latest = max(steps, default=None)
  where = (f"step {latest} in {manager.directory}, intact" if latest is not None
           else f"none in {manager.directory}")
  return disk.DiskFullError(
      f"no space left on device while checkpointing: expected room for one more checkpoint "
      f"(the last complete one is {where}); free space (or lower config.max_to_keep) and rerun "
      "the same command to resume.")


def _non_finite(step: int, loss: float, manager) -> NonFiniteLossError:
  manager.wait_until_finished()
  latest = manager.latest_step()
  where = (f"step {latest} in {manager.directory}" if latest is not None
           else f"none (nothing was saved in {manager.directory})")
  return NonFiniteLossError(
      f"The training loss is {loss} at step {step}; stopped without saving that state. The last "
      f"good checkpoint is {where}. Rerunning the same command resumes from it and will likely "
      "diverge again: lower config.learning_rate or check the input data.", step=step, loss=loss)


def export_variables(state: state_lib.TrainState, directory: str) -> None:
  """Writes each network's `{'params', 'batch_stats'}` as `<directory>/<name>` (host arrays)."""
  for name in state.params:
    variables = checkpoint.network_variables(state.params, state.batch_stats, name)
    checkpoint.save_variables(os.path.join(directory, name), jax.device_get(variables),
                              overwrite=True)


def _flat_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as `{'a.b': value}` with TensorBoard-friendly leaves (tuples become strings)."""
  flat = {}
  def visit(prefix, node):
    for key, value in node.items():
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        visit(f"{prefix}{key}.", value)
      else:
        flat[prefix + key] = value if isinstance(value, (bool, int, float, str)) else str(value)
  visit("", config)
  return flat
