"""Importing the authors' released weights into Flax variables.

- DeblurGAN: `latest_net_G.pth`, a PyTorch state dict (`model.1.weight`, ...). Its InstanceNorm
  running buffers (saved by PyTorch 0.3, never used by the original's test path) are ignored.
- FlowNetS: `flownets_EPE1.951.pth.tar`, a dict whose `state_dict` holds `conv1.0.weight`, ...
- DVD: `param_epoch_400.t7`, the Torch7 model's one flat parameter vector, and
  `bn_meanvar_epoch_400.t7`, its 22 batch norms' running means and variances. The vector is split
  in the graph's order (`dvd.LAYERS`; per layer: conv weight, conv bias, BN weight, BN bias), which
  is the only order Torch7's `getParameters()` can produce for this graph since every layer with
  parameters lies on its one input-to-output path. Reading `.t7` files needs `torchfile`.

Kernels go from PyTorch's `[out, in, kh, kw]` (convolution) or `[in, out, kh, kw]` (transposed
convolution) to Flax's `[kh, kw, in, out]` / `[kh, kw, out, in]` by the same transpose; the spatial
flip of a transposed convolution is done by the layer (`layers.ConvTranspose`). A checkpoint with
missing, unexpected or mis-shaped tensors raises `CheckpointMismatchError` listing all of them.

Command line (writes an Orbax checkpoint usable as `init_checkpoint`):

  python -m reblur_jax.models.convert --model=deblurgan --input=latest_net_G.pth --output=DIR
  python -m reblur_jax.models.convert --model=flownets --input=flownets_EPE1.951.pth.tar \
      --output=DIR
  python -m reblur_jax.models.convert --model=dvd --input=param_epoch_400.t7 \
      --bn_stats=bn_meanvar_epoch_400.t7 --output=DIR
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import re
import sys

from absl import app
from absl import flags
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from reblur_jax import checkpoint
from reblur_jax import models
from reblur_jax.models import dvd
from reblur_jax.models import flownet

# Flax leaf name -> PyTorch tensor name.
_LEAVES = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean",
           "var": "running_var"}
# DVD's tensors in the order of the Torch7 parameter vector and of its BN statistics files.
_DVD_PARAMS = (("conv", "kernel"), ("conv", "bias"), ("bn", "scale"), ("bn", "bias"))


class CheckpointMismatchError(ValueError):
  """A checkpoint's tensors do not match the network they are loaded into."""


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  """A Flax kernel's shape in PyTorch's layout (vectors are alike in both)."""
  return (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else tuple(shape)


def _to_flax(tensor: np.ndarray) -> np.ndarray:
  """A PyTorch tensor (numpy or torch) in Flax's layout, float32."""
  tensor = np.asarray(tensor, np.float32)
  return tensor.transpose(2, 3, 1, 0) if tensor.ndim == 4 else tensor


def _expected(model, *inputs) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
  """Flattened `{(collection, module..., leaf): shape}` of `model`'s variables (no compute)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), *inputs)
  return traverse_util.flatten_dict(shapes)


def _load(expected: Mapping[tuple[str, ...], jax.ShapeDtypeStruct],
          state_dict: Mapping[str, np.ndarray], torch_module: Callable[[tuple[str, ...]], str],
          ignored: Callable[[str], bool] = lambda key: False) -> dict:
  """Fills `expected` from `state_dict`, `torch_module` naming each Flax module path's tensor.

  Raises CheckpointMismatchError listing every missing, unexpected and mis-shaped tensor.
  """
  missing, misshaped, variables, used = [], [], {}, set()
  for path, leaf in expected.items():
    key = f"{torch_module(path[1:-1])}.{_LEAVES[path[-1]]}"
    if key not in state_dict:
      missing.append(f"{key} {_torch_shape(leaf.shape)}")
      continue
    used.add(key)
    value = _to_flax(state_dict[key])
    if value.shape != leaf.shape:
      misshaped.append(f"{key}: got {tuple(np.shape(state_dict[key]))}, "
                       f"expected {_torch_shape(leaf.shape)}")
      continue
    variables[path] = value
  unexpected = sorted(k for k in state_dict if k not in used and not ignored(k))
  if missing or unexpected or misshaped:
    problems = [f"{title} ({len(keys)}): " + ", ".join(keys)
                for title, keys in (("missing", missing), ("unexpected", unexpected),
                                    ("mis-shaped", misshaped)) if keys]
    raise CheckpointMismatchError(
        "checkpoint does not match the network (check the model name and --width):\n  "
        + "\n  ".join(problems))
  return traverse_util.unflatten_dict(variables)


def deblurgan_variables(state_dict: Mapping[str, np.ndarray], *, width: float = 1.0) -> dict:
  """Flax variables of `DeblurGAN(width)` from a `ResnetGenerator` state dict (numpy or torch)."""
  model = models.create("deblurgan", width=width)
  x = jnp.zeros((1, 1, 32, 32, 3))

  def torch_module(path):
    name = path[0]
    if name.startswith("block"):  # ResnetBlocks are model.10 .. model.18.
      return f"model.{10 + int(name[5:])}.conv_block.{1 if path[1] == 'conv1' else 6}"
    return {"conv_in": "model.1", "down1": "model.4", "down2": "model.7", "up1": "model.19",
            "up2": "model.22", "conv_out": "model.26"}[name]

  instance_norm_buffer = re.compile(r".*\.(running_mean|running_var|num_batches_tracked)$")
  return _load(_expected(model, x), state_dict, torch_module,
               ignored=lambda key: bool(instance_norm_buffer.match(key)))


def flownets_variables(checkpoint_dict: Mapping, *, width: float = 1.0) -> dict:
  """Flax variables of `FlowNetS(width)` from FlowNetPytorch's checkpoint or its `state_dict`."""
  if "div_flow" in checkpoint_dict and float(checkpoint_dict["div_flow"]) != flownet.DIV_FLOW:
    raise ValueError(f"checkpoint was trained with div_flow={checkpoint_dict['div_flow']}, but "
                     f"FlowNetS here scales flows by DIV_FLOW={flownet.DIV_FLOW}.")
  state_dict = checkpoint_dict.get("state_dict", checkpoint_dict)
  model = models.create("flownets", width=width)
  x = jnp.zeros((1, 64, 64, 3))
  encoder = {name for name, *_ in flownet.ENCODER}
  # Layers inside an nn.Sequential (conv + activation) carry the suffix ".0".
  torch_module = lambda path: (f"{path[0]}.0" if path[0] in encoder or path[0].startswith("deconv")
                               else path[0])
  return _load(_expected(model, x, x), state_dict, torch_module)


def dvd_variables(flat_params: np.ndarray, running_means: np.ndarray | Sequence[np.ndarray],
                  running_vars: np.ndarray | Sequence[np.ndarray], *, width: float = 1.0,
                  frames: int = 5) -> dict:
  """Flax variables of `DVD(frames, width)` from the Torch7 release's flat vectors.

  Args:
    flat_params: the model's parameters, one vector (15,305,291 values for the original).
    running_means: the 22 batch norms' running means, one array per layer or concatenated.
    running_vars: their running variances, likewise.
  """
  model = models.create("dvd", frames=frames, width=width)
  expected = _expected(model, jnp.zeros((1, frames, 32, 32, 3)))
  stats = {"running_mean": running_means, "running_var": running_vars}
  params_order = [("params", layer, *leaf) for layer in dvd.LAYERS for leaf in _DVD_PARAMS]
  stats_order = {name: [("batch_stats", layer, "bn", leaf) for layer in dvd.LAYERS]
                 for name, leaf in (("running_mean", "mean"), ("running_var", "var"))}
  state_dict = _split("flat_params", flat_params, params_order, expected)
  for name, order in stats_order.items():
    state_dict.update(_split(name, stats[name], order, expected))
  return _load(expected, state_dict, lambda path: f"{path[0]}.{path[1]}")


def _split(argument: str, flat, order, expected) -> dict[str, np.ndarray]:
  """Cuts a flat vector into the named PyTorch-layout tensors of `order`, in that order."""
  flat = np.concatenate([np.ravel(a) for a in flat]) if isinstance(flat, (list, tuple)) else (
      np.ravel(flat))
  shapes = [_torch_shape(expected[path].shape) for path in order]
  sizes = [int(np.prod(s)) for s in shapes]
  if flat.size != sum(sizes):
    raise CheckpointMismatchError(
        f"{argument} has {flat.size} values, but the DVD network (with this width and frames) "
        f"needs {sum(sizes)}.")
  pieces = np.split(flat, np.cumsum(sizes)[:-1])
  return {f"{p[1]}.{p[2]}.{_LEAVES[p[3]]}": piece.reshape(shape)
          for p, piece, shape in zip(order, pieces, shapes)}


def load_torch(path: str) -> dict:
  """A PyTorch checkpoint file as (nested) dicts of numpy arrays; needs torch (the CPU build)."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading .pth files needs PyTorch: pip install torch (the CPU build).") from e
  loaded = torch.load(path, map_location="cpu", weights_only=True)
  as_numpy = lambda v: v.numpy() if isinstance(v, torch.Tensor) else v
  return {k: ({kk: as_numpy(vv) for kk, vv in v.items()} if isinstance(v, Mapping)
              else as_numpy(v)) for k, v in loaded.items()}


def load_torch7_dvd(params_path: str, bn_stats_path: str) -> tuple:
  """`(flat_params, running_means, running_vars)` from the DVD release's two `.t7` files."""
  try:
    import torchfile  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading Torch7 .t7 files needs torchfile: pip install torchfile.") from e
  # Lua tables come back as lists or as dicts keyed 1..n, depending on their contents.
  as_list = lambda t: [t[k] for k in sorted(t)] if isinstance(t, Mapping) else list(t)
  flat = np.asarray(torchfile.load(params_path), np.float32)
  means, variances = as_list(torchfile.load(bn_stats_path))  # The table {means, vars}.
  return flat, as_list(means), as_list(variances)


def convert_file(model: str, path: str, *, width: float = 1.0, bn_stats: str | None = None):
  """Flax variables of `model` from its released file(s); DVD also reads `.npz` files with the
  arrays `params`, `running_mean`, `running_var` (the flat vectors, in the Torch7 order)."""
  if model == "deblurgan":
    return deblurgan_variables(load_torch(path), width=width)
  if model == "flownets":
    return flownets_variables(load_torch(path), width=width)
  if model == "dvd":
    if path.endswith(".npz"):
      with np.load(path) as f:
        arrays = f["params"], f["running_mean"], f["running_var"]
    elif bn_stats is None:
      raise ValueError("DVD needs --bn_stats=bn_meanvar_epoch_400.t7 beside its .t7 parameters.")
    else:
      arrays = load_torch7_dvd(path, bn_stats)
    return dvd_variables(*arrays, width=width)
  raise ValueError(f"unknown model {model!r}; expected one of {sorted(models.MODELS)}.")


def convert(model: str, input_path: str, output: str, *, width: float = 1.0,
            bn_stats: str | None = None, overwrite: bool = False) -> str:
  """Converts the released weights at `input_path` into a variables directory at `output`
  (`checkpoint.save_variables`); returns its absolute path."""
  variables = convert_file(model, input_path, width=width, bn_stats=bn_stats)
  return checkpoint.save_variables(output, variables, overwrite=overwrite)


def _define_flags() -> None:
  """Flags, defined only when run as a program (importing this module defines none)."""
  flags.DEFINE_enum("model", None, sorted(models.MODELS), "Which network the weights are of.",
                    required=True)
  flags.DEFINE_string("input", None, "The released weights file.", required=True)
  flags.DEFINE_string("output", None, "Directory for the Orbax checkpoint.", required=True)
  flags.DEFINE_string("bn_stats", None, "DVD only: bn_meanvar_epoch_400.t7.")
  flags.DEFINE_float("width", 1.0, "Channel multiplier (1 = the original).")
  flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  args = flags.FLAGS
  try:
    path = convert(args.model, args.input, args.output, width=args.width,
                   bn_stats=args.bn_stats, overwrite=args.overwrite)
  # The messages say what to fix: a missing file, weights of another network, an existing output.
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    sys.exit(f"error: {e}")
  print(f"wrote {args.model} variables to {path}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
