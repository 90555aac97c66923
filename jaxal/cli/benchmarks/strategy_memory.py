"""strategy-memory: the memory and time of BADGE and BatchBALD selection.

BADGE (K = 100) and BatchBALD (K = 10, M = 1000) selection over a --pool_size pool: the compiled
selection's temporary memory (XLA's memory analysis) and the selection time.

Baseline: the arrays a direct implementation forms (BADGE: the N x (D*C) gradient embeddings;
BatchBALD: the [N, M, S] joint probabilities of every candidate with the M configurations)."""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common

FLAGS = flags.FLAGS


def strategy_memory() -> dict:
  """Peak memory of BADGE and BatchBALD selection over a --pool_size pool: the temporary buffers of
  the compiled selection (XLA's memory analysis) against the arrays a direct implementation forms
  (BADGE: the N x (D*C) gradient embeddings; BatchBALD: the [N, M, S] joint probabilities of every
  candidate with the M configurations), and the measured selection time."""
  from jaxal.selection.badge import badge_select
  from jaxal.selection.batchbald import batchbald_select
  n, c, d, s, m = FLAGS.pool_size, 10, 128, FLAGS.mc_samples, 1000
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(s, n, c)).astype(np.float32)
  samples = jnp.asarray(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
  probs = samples.mean(0)
  feats = jnp.asarray(np.abs(rng.normal(size=(n, d))).astype(np.float32))
  cand = jnp.ones(n, bool)
  key = jax.random.PRNGKey(0)
  rows = []
  for name, k, fn, args, naive in (
      ("badge", 100, jax.jit(lambda key, p, f, mk: badge_select(key, p, f, mk, 100)),
       (key, probs, feats, cand), n * d * c * 4),
      ("batchbald", 10, jax.jit(lambda key, x, mk: batchbald_select(key, x, mk, 10, m)),
       (key, samples, cand), n * m * s * 4)):
    compiled, compile_s = common.compile_aot(fn, *args)
    mem = compiled.memory_analysis()
    t0 = time.perf_counter()
    picked = np.asarray(jax.block_until_ready(compiled(*args)))
    secs = time.perf_counter() - t0
    rows.append({"strategy": name, "k": k, "pool_size": n, "seconds": secs,
                 "compile_seconds": compile_s, "temp_bytes": int(mem.temp_size_in_bytes),
                 "argument_bytes": int(mem.argument_size_in_bytes), "naive_bytes": naive,
                 "distinct": len(set(picked.tolist())) == k})
  print(f"\nstrategy-memory: selection over a {n:,}-item pool (C={c}, D={d}, S={s}, M={m}); "
        f"backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print("| strategy | K | seconds | inputs MB | temporaries MB | direct implementation MB | ratio |")
  print("|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['strategy']} | {r['k']} | {r['seconds']:.1f} | {r['argument_bytes'] / 2**20:.0f} | "
          f"{r['temp_bytes'] / 2**20:.0f} | {r['naive_bytes'] / 2**20:.0f} | "
          f"{r['temp_bytes'] / r['naive_bytes']:.3f}x |")
  return {"workload": "strategy-memory", "env": common.env(), "results": rows,
          "peak_rss_mb": common.peak_rss_mb()}
