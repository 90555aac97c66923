"""pool-scale: one real active-learning run through the command line over a pool of N images kept
on the host as a memory-mapped .npy, for N in --pool_sizes (e.g. 60000,1000000,10000000).

A generator writes the pool block by block (never whole in memory): Fashion-MNIST training images
(--data_dir, or JAXAL_SHARED_DATA/fashion_mnist; sklearn digits padded to 28x28 without either)
drawn at random, each shifted by up to --pool_shift pixels and given uniform integer noise of up to
+-`--pool_noise` grey levels, with their labels, in the `npy` dataset layout; the test set is the
source's test split. Then `jaxal.cli.run` runs LeNet-5 with BALD (--mc_samples MC-dropout passes)
over the whole pool for --scale_rounds rounds, with --pool_on=host (streamed in --stream_chunk
row blocks) and, with --pool_mode=both, --pool_on=device (the whole pool on the device) as the
baseline. Each run is its own process; its wall time and peak resident memory (wait4's rusage) and
the per-round seconds of results.json are reported. Round 0 includes compilation, so the per-image
round cost is the median over rounds 1.. (training on the small labeled set included)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common

FLAGS = flags.FLAGS
flags.DEFINE_integer("scale_rounds", 3, "pool-scale: acquisition rounds of each run.")
flags.DEFINE_string("pool_dir", "", "pool-scale: where the generated pools are kept (reused when "
                    "present with the same size); empty: a temporary folder, removed after.")
flags.DEFINE_integer("pool_shift", 2, "pool-scale: largest random shift in pixels.")
flags.DEFINE_integer("pool_noise", 16, "pool-scale: largest noise in grey levels.")

MODES = ("host", "device", "both")


def _source(data_dir: str):
  """(x_train, y_train, x_test, y_test, class_names) uint8 28x28x1 images to draw the pool from."""
  from jaxal.data import load_dataset  # pylint: disable=import-outside-toplevel
  if not data_dir and os.environ.get("JAXAL_SHARED_DATA"):
    data_dir = os.path.join(os.environ["JAXAL_SHARED_DATA"], "fashion_mnist")
  if data_dir and os.path.isdir(data_dir):
    ds = load_dataset("idx", data_dir)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.class_names
  ds = load_dataset("digits")
  big = lambda x: np.pad(np.repeat(np.repeat(x, 3, 1), 3, 2), ((0, 0), (2, 2), (2, 2), (0, 0)))
  return big(ds.x_train), ds.y_train, big(ds.x_test), ds.y_test, ds.class_names


def write_pool(out_dir: str, n: int, source, seed: int = 0, shift: int = 2, noise: int = 16,
               block: int = 65536) -> None:
  """The `npy` dataset layout in `out_dir` with an n-image pool drawn from `source` (see the module
  docstring), written block by block with plain file writes."""
  x, y, x_test, y_test, names = source
  rng = np.random.default_rng(seed)
  h, w, c = x.shape[1:]
  os.makedirs(out_dir, exist_ok=True)
  labels = np.empty(n, np.int32)
  tmp = os.path.join(out_dir, "train_images.npy.partial")
  with open(tmp, "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                             "shape": (n, h, w, c)})
    for start in range(0, n, block):
      m = min(block, n - start)
      src = rng.integers(0, len(x), m)
      dy, dx = rng.integers(-shift, shift + 1, (2, m))
      padded = np.pad(x[src], ((0, 0), (shift, shift), (shift, shift), (0, 0)))
      rows = np.arange(h)[None, :] + shift - dy[:, None]
      cols = np.arange(w)[None, :] + shift - dx[:, None]
      img = padded[np.arange(m)[:, None, None], rows[:, :, None], cols[:, None, :]]
      img = img.astype(np.int16) + rng.integers(-noise, noise + 1, img.shape, dtype=np.int16)
      f.write(np.clip(img, 0, 255).astype(np.uint8).tobytes())
      labels[start:start + m] = y[src]
  np.save(os.path.join(out_dir, "train_labels.npy"), labels)
  np.save(os.path.join(out_dir, "test_images.npy"), x_test)
  np.save(os.path.join(out_dir, "test_labels.npy"), y_test)
  with open(os.path.join(out_dir, "class_names.txt"), "w") as f:
    f.write("".join(f"{name}\n" for name in names))
  os.replace(tmp, os.path.join(out_dir, "train_images.npy"))


def _pool(root: str, n: int, source) -> tuple[str, float]:
  """The folder of the n-image pool under `root` (generated unless present); seconds spent."""
  out = os.path.join(root, f"pool_{n}")
  if os.path.isfile(os.path.join(out, "train_images.npy")):
    return out, 0.0
  t0 = time.perf_counter()
  write_pool(out, n, source(), shift=FLAGS.pool_shift, noise=FLAGS.pool_noise)
  return out, time.perf_counter() - t0


def _run(data_dir: str, n: int, mode: str, workdir: str) -> dict:
  """One CLI run in its own process: wall seconds, peak RSS, round seconds, selections."""
  cmd = [sys.executable, "-m", "jaxal.cli.run", "--dataset=npy", f"--data_dir={data_dir}",
         "--model=lenet5", "--strategies=bald", "--uncertainty=mc_dropout",
         f"--mc_samples={FLAGS.mc_samples}", f"--rounds={FLAGS.scale_rounds}", "--seeds=1",
         "--initial_size=20", "--query_size=10", "--val_size=50", f"--epochs={FLAGS.epochs}",
         "--batch_size=32", "--optimizer=adam", "--learning_rate=0.001",
         f"--eval_batch_size={FLAGS.chunk}", f"--pool_on={mode}", "--mesh=none",
         f"--host_block={FLAGS.stream_chunk}", "--checkpoint_every=0", f"--workdir={workdir}",
         "--overwrite"]
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  out = proc.stdout.read()
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.perf_counter() - t0
  if status:
    raise SystemExit(f"error: pool-scale run failed ({n} items, --pool_on={mode}):\n{out[-3000:]}")
  with open(os.path.join(workdir, "results.json")) as f:
    rounds = json.load(f)["runs"][0]["rounds"]
  steady = [r["seconds"] for r in rounds[1:-1]] or [rounds[0]["seconds"]]
  return {"pool_size": n, "pool_on": mode, "wall_seconds": wall,
          "peak_rss_mb": usage.ru_maxrss / 1024.0, "round_seconds": [r["seconds"] for r in rounds],
          "steady_round_seconds": float(np.median(steady)),
          "images_per_second": n / float(np.median(steady)),
          "test_accuracy": [r["test_accuracy"] for r in rounds],
          "selected": [r["selected"] for r in rounds], "log_tail": out[-1500:]}


def pool_scale() -> dict:
  if FLAGS.pool_mode not in MODES:
    raise SystemExit(f"error: --pool_mode={FLAGS.pool_mode!r}; accepted: {', '.join(MODES)}.")
  sizes = [int(v) for v in FLAGS.pool_sizes.split(",") if v] or [FLAGS.pool_size]
  modes = ["host", "device"] if FLAGS.pool_mode == "both" else [FLAGS.pool_mode]
  root = FLAGS.pool_dir or tempfile.mkdtemp(prefix="jaxal-pool-scale-")
  cached = {}
  source = lambda: cached.setdefault("s", _source(FLAGS.data_dir))
  rows = []
  try:
    for n in sizes:
      data_dir, gen_s = _pool(root, n, source)
      for mode in modes:
        with tempfile.TemporaryDirectory() as work:
          row = _run(data_dir, n, mode, work)
        row["generate_seconds"] = gen_s
        rows.append(row)
        print(f"  {n:,} images, --pool_on={mode}: wall {row['wall_seconds']:.0f}s, round "
              f"{row['steady_round_seconds']:.1f}s ({row['images_per_second']:,.0f} images/s), "
              f"peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
  finally:
    if not FLAGS.pool_dir:
      shutil.rmtree(root, ignore_errors=True)
  print(f"\npool-scale: LeNet-5, BALD (S={FLAGS.mc_samples}) over the whole pool, "
        f"{FLAGS.scale_rounds} rounds; {os.cpu_count()} CPUs")
  print("| pool images | pool on | wall s | round s | images/s | peak RSS MB | generate s |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['pool_size']:,} | {r['pool_on']} | {r['wall_seconds']:.0f} | "
          f"{r['steady_round_seconds']:.1f} | {r['images_per_second']:,.0f} | "
          f"{r['peak_rss_mb']:.0f} | {r['generate_seconds']:.0f} |")
  by = {(r["pool_size"], r["pool_on"]): r for r in rows}
  for n in sizes:
    if (n, "host") in by and (n, "device") in by:
      print(f"{n:,}: host / device round time {by[(n, 'host')]['steady_round_seconds'] / by[(n, 'device')]['steady_round_seconds']:.2f}x, "
            f"same selections: {by[(n, 'host')]['selected'] == by[(n, 'device')]['selected']}")
  return {"workload": "pool-scale", "env": common.env(), "results": rows}
