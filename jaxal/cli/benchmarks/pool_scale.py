"""pool-scale: the time and peak resident memory of scoring and selecting over a large pool.

BALD (S = --mc_samples MC-dropout passes of an MLP) and top-10 selection over a synthetic pool of
--pool_size x --feature_dim Gaussian class clusters, streamed from a memory-mapped .npy on disk
chunk by chunk (`jaxal.streaming.stream_top_k`).

Baseline: the whole pool held on the device (`scoring.score_pool` + `top_k`). With
--pool_sizes each size and mode runs in its own subprocess, so each peak is its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common
from jaxal import models, scoring, training
from jaxal.selection.primitives import top_k

FLAGS = flags.FLAGS


def _write_pool(path: str, n: int, dim: int, block: int = 65536) -> None:
  """A synthetic pool of n x dim float32 Gaussian class clusters written to a .npy block by block
  with plain file writes (the whole array is never in memory, and nothing stays mapped)."""
  rng = np.random.default_rng(0)
  centers = rng.normal(scale=3.0, size=(10, dim)).astype(np.float32)
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(
        np.dtype(np.float32)), "fortran_order": False, "shape": (n, dim)})
    for start in range(0, n, block):
      m = min(block, n - start)
      rows = centers[rng.integers(0, 10, m)] + rng.normal(size=(m, dim)).astype(np.float32)
      f.write(np.ascontiguousarray(rows, np.float32).tobytes())


def _pool_scale_one(n: int, mode: str) -> dict:
  from jaxal import streaming
  dim, s, k = FLAGS.feature_dim, FLAGS.mc_samples, 10
  chunk = min(FLAGS.stream_chunk, n)   # as apply_in_chunks does, so both modes draw the same masks
  model = models.get_model("mlp", 10, hidden=(256,))
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, dim)))
  key = jax.random.PRNGKey(1)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "pool.npy")
    t0 = time.perf_counter()
    _write_pool(path, n, dim)
    write_s = time.perf_counter() - t0
    rss_before = common.peak_rss_mb()
    x = streaming.NpyFile(path)   # plain reads: no page of the pool stays mapped
    # A streamed block of `chunk` rows is scored in inner chunks of 1024 (`lax.map`), so memory is
    # set by the inner chunk and the per-call overhead is paid once per block. The in-memory
    # baseline uses the same blocks and keys, so both select the same items.
    def block_scores(v, xb, i):
      return scoring.score_pool(model, v, xb, jax.random.fold_in(key, i), "mc_dropout",
                                scoring.bald, s, 1024)
    if mode == "stream":
      fn = jax.jit(lambda xb, i: block_scores(variables, xb, i))
      compiled, compile_s = common.compile_aot(fn, jnp.zeros((chunk, dim)), 0)
      streaming.stream_top_k(compiled, np.zeros((chunk, dim), np.float32), k, chunk=chunk)  # warm
      t0 = time.perf_counter()
      idx, _ = streaming.stream_top_k(compiled, x, k, chunk=chunk)
    else:
      fn = jax.jit(lambda v, xs: top_k(training.apply_in_chunks(
          lambda xb, i: block_scores(v, xb, i), xs, chunk, with_index=True), jnp.ones(n, bool), k))
      compiled, compile_s = common.compile_aot(fn, variables,
                                               jax.ShapeDtypeStruct((n, dim), jnp.float32))
      t0 = time.perf_counter()
      xd = jnp.asarray(x[0:n])             # the whole pool read and placed on the device
      idx = np.asarray(compiled(variables, xd))
    seconds = time.perf_counter() - t0
  return {"pool_size": n, "mode": mode, "feature_dim": dim, "mc_samples": s, "chunk": chunk,
          "seconds": seconds, "compile_seconds": compile_s, "write_seconds": write_s,
          "peak_rss_mb": common.peak_rss_mb(), "rss_before_pool_mb": rss_before,
          "selected": [int(i) for i in idx]}


def pool_scale() -> dict:
  modes = ["stream", "memory"] if FLAGS.pool_mode == "both" else [FLAGS.pool_mode]
  if FLAGS.pool_mode not in ("stream", "memory", "both"):
    raise SystemExit(f"error: --pool_mode={FLAGS.pool_mode!r}; accepted: stream, memory, both.")
  sizes = [int(v) for v in FLAGS.pool_sizes.split(",") if v] if FLAGS.pool_sizes else []
  rows = []
  if not sizes:
    rows = [_pool_scale_one(FLAGS.pool_size, m) for m in modes]
  else:
    for n in sizes:
      for m in modes:
        with tempfile.TemporaryDirectory() as tmp:
          out = os.path.join(tmp, "one.json")
          cmd = [sys.executable, "-m", "jaxal.cli.benchmark", "pool-scale", f"--pool_size={n}",
                 f"--pool_mode={m}", f"--feature_dim={FLAGS.feature_dim}",
                 f"--mc_samples={FLAGS.mc_samples}", f"--stream_chunk={FLAGS.stream_chunk}",
                 f"--out={out}"]
          subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
          with open(out) as f:
            rows.extend(json.load(f)["results"])
        print(f"  {n} items, {m}: {rows[-1]['seconds']:.1f}s, peak {rows[-1]['peak_rss_mb']:.0f} MB",
              flush=True)
  print(f"\npool-scale: BALD (S={FLAGS.mc_samples}, MLP 256, dropout before the classifier) "
        f"+ top-10 over N x {FLAGS.feature_dim} features; backend {jax.default_backend()} "
        f"({os.cpu_count()} CPUs)")
  print("| pool items | mode | seconds | items/s | peak RSS MB | compile s |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['pool_size']:,} | {r['mode']} | {r['seconds']:.2f} | "
          f"{r['pool_size'] / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} | "
          f"{r['compile_seconds']:.2f} |")
  by = {(r["pool_size"], r["mode"]): r for r in rows}
  for n in sorted({r["pool_size"] for r in rows}):
    if (n, "stream") in by and (n, "memory") in by:
      a, b = by[(n, "stream")], by[(n, "memory")]
      print(f"{n:,}: stream / in-memory time {a['seconds'] / b['seconds']:.2f}x, peak memory "
            f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x, same selection: "
            f"{a['selected'] == b['selected']}")
  return {"workload": "pool-scale", "env": common.env(), "results": rows}
