r"""Speed benchmarks, each reported as medians over repeats and as a ratio to a baseline measured in
the same process.

  python -m experiments.benchmark score-throughput [--data_dir=<MNIST IDX folder>] [--repeats=3]

Workloads:
  score-throughput  BALD with S MC-dropout samples over a 60,000-image pool (MNIST's training set
                    when --data_dir is given, random 28x28 images otherwise), for gal_cnn and lenet5:
                    jaxal's scoring (one compiled program; the network before the first dropout
                    computed once per item) against the baseline of S separate full stochastic
                    passes over the pool, as PyTorch libraries run MC dropout. Compilation and the
                    first run are timed separately.
Results are printed as a table and written to --out (JSON).
"""
from __future__ import annotations

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxal import models, reporting, scoring, training

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "", "MNIST IDX folder (score-throughput); random images if empty.")
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).")
flags.DEFINE_integer("pool_size", 60000, "Pool items to score.")
flags.DEFINE_integer("mc_samples", 20, "S, MC-dropout samples.")
flags.DEFINE_integer("chunk", 1024, "Items per scoring chunk.")
flags.DEFINE_string("models", "gal_cnn,lenet5", "Models to measure.")
flags.DEFINE_string("out", "", "JSON output path (default benchmark-<workload>.json).")

WORKLOADS = ("score-throughput",)


def _timed(fn, *args, repeats: int):
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times), times


def _pool_images(n: int) -> np.ndarray:
  if FLAGS.data_dir:
    from jaxal.data import channel_stats, load_dataset, normalize
    ds = load_dataset("idx", FLAGS.data_dir)
    m, s = channel_stats(ds.x_train)
    return normalize(ds.x_train[:n], m, s)
  return np.random.default_rng(0).normal(size=(n, 28, 28, 1)).astype(np.float32)


def score_throughput() -> dict:
  x = jnp.asarray(_pool_images(FLAGS.pool_size))
  rows = []
  for name in [m for m in FLAGS.models.split(",") if m]:
    model = models.get_model(name, 10)
    variables = model.init(jax.random.PRNGKey(0), x[:1])
    key = jax.random.PRNGKey(1)
    result = {"model": name}
    one_pass = jax.jit(lambda v, xs, k: training.apply_in_chunks(
        lambda xb, i: jax.nn.softmax(model.apply(v, xb, dropout=True, rngs={
            "dropout": jax.random.fold_in(k, i)})[0], -1), xs, FLAGS.chunk, with_index=True))
    bald = jax.jit(scoring.bald)

    def full_passes(v, xs, k):
      # The baseline peers run: S separate stochastic forward passes over the pool, then BALD.
      return bald(jnp.stack([one_pass(v, xs, jax.random.fold_in(k, s))
                             for s in range(FLAGS.mc_samples)]))

    shared_fn = jax.jit(lambda v, xs, k: scoring.score_pool(
        model, v, xs, k, "mc_dropout", scoring.bald, FLAGS.mc_samples, FLAGS.chunk, True))
    for tag, fn in (("full_passes", full_passes), ("shared_trunk", shared_fn)):
      first, med, times = _timed(fn, variables, x, key, repeats=FLAGS.repeats)
      result[tag] = {"seconds": med, "all_seconds": times, "compile_and_first_run": first,
                     "items_per_second": FLAGS.pool_size / med}
    result["speedup"] = result["full_passes"]["seconds"] / result["shared_trunk"]["seconds"]
    rows.append(result)
  print(f"\nBALD scoring, S={FLAGS.mc_samples}, pool {FLAGS.pool_size}, backend "
        f"{jax.default_backend()} ({jax.devices()[0].device_kind}), median of {FLAGS.repeats}")
  print(f"{'model':<10} {'S full passes (s)':>18} {'shared trunk (s)':>17} {'ratio':>7}")
  for r in rows:
    print(f"{r['model']:<10} {r['full_passes']['seconds']:>18.2f} "
          f"{r['shared_trunk']['seconds']:>17.2f} {r['speedup']:>6.2f}x")
  return {"workload": "score-throughput", "pool_size": FLAGS.pool_size,
          "mc_samples": FLAGS.mc_samples, "chunk": FLAGS.chunk, "repeats": FLAGS.repeats,
          "data": FLAGS.data_dir or "random", "backend": jax.default_backend(),
          "device": jax.devices()[0].device_kind, "results": rows}


def main(argv):
  if len(argv) != 2 or argv[1] not in WORKLOADS:
    raise SystemExit(f"error: name one workload; accepted: {', '.join(WORKLOADS)}.")
  workload = argv[1]
  out = {"score-throughput": score_throughput}[workload]()
  path = FLAGS.out or f"benchmark-{workload}.json"
  reporting.write_json_atomic(path, out)
  print(f"written to {path}")


if __name__ == "__main__":
  app.run(main)
