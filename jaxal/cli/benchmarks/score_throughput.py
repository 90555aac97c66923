"""score-throughput: the time of BALD scoring over a pool.

BALD with S MC-dropout samples over a 60,000-image pool (MNIST's training set when --data_dir is
given, random 28x28 images otherwise), for gal_cnn and lenet5, with jaxal's scoring (the network
before the first dropout computed once per item).

Baseline: S separate full stochastic passes over the pool, as PyTorch libraries do."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common
from jaxal import models, scoring, training

FLAGS = flags.FLAGS


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
      first, med, times = common.timed(fn, variables, x, key, repeats=FLAGS.repeats)
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
          "data": FLAGS.data_dir or "random", "env": common.env(), "results": rows}
