r"""One command for a GPU session: the paper's speed figures next to ours, in under 5 minutes.

Measures, on the default backend (all local devices):
  (a) the Table 3 fine-tuning step (`train_step.benchmark`: 10 clips of 128 x 128, full width):
      DVD-Reblur and DeblurGAN-Reblur, conv and warp blur models, float32 and bfloat16 compute;
  (b) seconds per 1280x720 frame of the three networks (`inference.time_per_frame`, the time the
      evaluation report gives), float32 and bfloat16;
  (c) the DVD-Reblur conv float32 step's weak scaling over 1, 2, 4, ... local devices (10 clips
      each);
and prints them beside the paper's numbers (Table 3: 2.15 / 0.56 s DVD conv / warp, 2.32 / 1.01 s
DeblurGAN; Section 5: 0.84 s DVD-Reblur, 0.85 s DeblurGAN-Reblur per 720p frame).

  python benchmarks/gpu.py                 # the full sizes (a GPU: minutes)
  python benchmarks/gpu.py --quick         # thin networks, small frames: seconds on a CPU
  python benchmarks/gpu.py --json=out.json # also the rows as JSON

On the device machine (Python 3.12, CUDA jax 0.11 preinstalled, flax / optax / orbax too; see
/work/.library/device/README.md), the project's other imports travel as wheels. Once, here:

  echo /.whl/ >> .git/info/exclude
  P="--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
  python3 -m pip download --no-deps $P -d .whl ml_collections==1.1.0 dm-pix==0.4.5 grain==0.2.18 \
    portpicker array-record==0.8.6 tensorflow-datasets==4.9.10 dm-tree==0.1.10 immutabledict \
    simple-parsing docstring-parser tensorflow-metadata googleapis-common-protos termcolor toml
  python3 -m pip wheel --no-deps -w .whl promise==2.3   # an sdist only; pure Python

then one `run` with carry [".whl"] and timeout_s 600:

  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. || exit;
  python3 benchmarks/gpu.py --json=$OUT/gpu.json 2>&1 | tee $OUT/gpu.txt

(untested there: no GPU was lent to the session that wrote this). Paste the table into
docs/performance.md.
"""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
from absl import app
from absl import flags

from reblur_jax import models
from reblur_jax.evaluation import inference

import train_step  # benchmarks/: first on sys.path when this file runs as a script.

PAPER_STEP_S = {("dvd", "conv"): 2.15, ("dvd", "warp"): 0.56, ("deblurgan", "conv"): 2.32,
                ("deblurgan", "warp"): 1.01}
PAPER_FRAME_S = {"dvd": 0.84, "deblurgan": 0.85}
DTYPES = ("float32", "bfloat16")
# name: (width, clip side, clips per device, timed steps, frame (H, W), timed frames)
SIZES = {"full": (1.0, 128, 10, 5, inference.PAPER_SIZE, 3),
         "quick": (1 / 16, 32, 2, 1, (64, 96), 1)}


def step_rows(size: str) -> list[dict]:
  width, crop, batch, steps = SIZES[size][:4]
  # --quick: one step (compiling it dominates); the frames below cover the other networks.
  settings = ([("dvd", "warp", "bfloat16")] if size == "quick" else
              [(m, b, d) for m in ("dvd", "deblurgan") for b in ("conv", "warp") for d in DTYPES])
  rows = []
  for model, blur_model, dtype in settings:
    r = train_step.benchmark(model, blur_model, batch_size=batch * jax.device_count(),
                             crop_size=crop, width=width, steps=steps, compute_dtype=dtype)
    rows.append({"what": "step", "network": model, "blur_model": blur_model, "dtype": dtype,
                 "devices": jax.device_count(), "seconds": r["step_s"],
                 "paper_s": PAPER_STEP_S[model, blur_model]})
  return rows


def frame_rows(size: str) -> list[dict]:
  width, frame, repeats = SIZES[size][0], SIZES[size][4], SIZES[size][5]
  settings = ([("dvd", "float32"), ("deblurgan", "bfloat16"), ("flownets", "float32")]
              if size == "quick" else
              [(name, dtype) for name in ("dvd", "deblurgan", "flownets") for dtype in DTYPES])
  rows = []
  for name, dtype in settings:
    model = models.create(name, width=width, dtype=jnp.dtype(dtype))
    frames = 2 if name == "flownets" else model.num_input_frames
    small = jnp.zeros((1, frames, 64, 64, 3))
    inputs = (small[:, 0], small[:, 1]) if name == "flownets" else (small,)
    # Fully convolutional: parameters do not depend on the frame size.
    variables = jax.jit(model.init)(jax.random.key(0), *inputs)
    apply = jax.jit(model.apply)
    fn = ((lambda w, apply=apply, v=variables: apply(v, w[:, 0], w[:, 1]))
          if name == "flownets" else functools.partial(apply, variables))
    seconds, _ = inference.time_per_frame(fn, frames, frame, repeats=repeats)
    rows.append({"what": "frame", "network": name, "dtype": dtype, "size": list(frame),
                 "seconds": seconds, "paper_s": PAPER_FRAME_S.get(name)})
  return rows


def scaling_rows(size: str, steps: list[dict]) -> list[dict]:
  """The first step's setting on 1, 2, 4, ... devices, the per-device batch fixed."""
  width, crop, batch, n_steps = SIZES[size][:4]
  first = steps[0]
  counts = sorted({min(2**k, jax.device_count())
                   for k in range(jax.device_count().bit_length() + 1)})
  rows = []
  for count in counts:
    seconds = first["seconds"] if count == first["devices"] else train_step.benchmark(
        first["network"], first["blur_model"], batch_size=batch * count, crop_size=crop,
        width=width, steps=n_steps, compute_dtype=first["dtype"],
        devices=jax.devices()[:count])["step_s"]
    rows.append({"what": "scaling", "network": first["network"],
                 "blur_model": first["blur_model"], "dtype": first["dtype"],
                 "devices": count, "clips": batch * count, "seconds": seconds,
                 "examples_per_s": batch * count / seconds})
  return rows


def table(rows: list[dict]) -> str:
  paper = lambda r: f"{r['paper_s']:.2f}" if r.get("paper_s") else "-"
  lines = ["| measurement | network | setting | dtype | ours s | paper s |",
           "|---|---|---|---|---|---|"]
  for r in rows:
    if r["what"] == "step":
      setting = f"step, {r['blur_model']}, {r['devices']} device(s)"
    elif r["what"] == "frame":
      setting = f"per frame {r['size'][1]}x{r['size'][0]}"
    else:
      setting = (f"scaling, {r['devices']} device(s), {r['clips']} clips: "
                 f"{r['examples_per_s']:.1f} clips/s")
    lines.append(f"| {r['what']} | {r['network']} | {setting} | {r['dtype']} | "
                 f"{r['seconds']:.3f} | {paper(r)} |")
  return "\n".join(lines)


def run(size: str) -> list[dict]:
  steps = step_rows(size)
  return steps + frame_rows(size) + scaling_rows(size, steps)


def define_flags():
  flags.DEFINE_bool("quick", False, "thin networks, small sizes")
  flags.DEFINE_string("json", None, "also write the rows to this file")


def main(argv):
  del argv
  args = flags.FLAGS
  size = "quick" if args.quick else "full"
  print(f"{inference.device_description()} x {jax.device_count()}, jax {jax.__version__}, "
        f"sizes: {size} {SIZES[size]}", flush=True)
  rows = run(size)
  print(table(rows))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
