"""kmeans: the time and inertia of jaxal.kmeans.

--kmeans_n x --kmeans_d Gaussian-mixture features, k = --kmeans_k, with jaxal.kmeans.

Baseline: scikit-learn's KMeans (k-means++, n_init=1, same max_iter and tol), in this process, with
scikit-learn's BLAS limited to one thread (see `_bench_sklearn`)."""
from __future__ import annotations

import os
import statistics
import time

import jax
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common

FLAGS = flags.FLAGS


def _mixture(n: int, d: int, components: int, seed: int) -> np.ndarray:
  """[n, d] float32 points from `components` unit-variance Gaussians whose means have standard
  deviation 1 (neighbouring components overlap, so Lloyd needs a realistic number of iterations):
  a stand-in for network features."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(components, d)).astype(np.float32)
  return means[rng.integers(0, components, size=n)] + rng.normal(size=(n, d)).astype(np.float32)


def _bench_sklearn(x: np.ndarray) -> list[dict]:
  """scikit-learn's KMeans with its OpenMP threads and BLAS limited to one thread: its Lloyd loop
  sets that limit itself, but its k-means++ calls multi-threaded OpenBLAS on small float64 blocks,
  which in a process where XLA's CPU thread pool is alive ran ~40x slower on 2 cores (10k x 128,
  k=200: 15.9 s vs 0.37 s)."""
  from sklearn.cluster import KMeans
  from threadpoolctl import threadpool_limits
  runs = []
  for rep in range(FLAGS.repeats):
    km = KMeans(n_clusters=FLAGS.kmeans_k, init="k-means++", n_init=1,
                max_iter=FLAGS.kmeans_max_iter, tol=FLAGS.kmeans_tol, random_state=rep)
    with threadpool_limits(limits=1, user_api="blas"):
      t0 = time.perf_counter()
      km.fit(x)
      secs = time.perf_counter() - t0
    runs.append({"seconds": secs, "iterations": int(km.n_iter_), "inertia": float(km.inertia_)})
    print(f"  sklearn repeat {rep}: {secs:8.2f} s, {km.n_iter_} iterations", flush=True)
  return runs


def kmeans_workload() -> dict:
  from jaxal import kmeans as km
  x = _mixture(FLAGS.kmeans_n, FLAGS.kmeans_d, FLAGS.kmeans_k, 0)
  xd = jax.device_put(x)
  fn = jax.jit(km.kmeans, static_argnames=("k", "max_iter", "n_init", "chunk"))
  kw = dict(k=FLAGS.kmeans_k, max_iter=FLAGS.kmeans_max_iter, n_init=1, chunk=4096)
  t0 = time.perf_counter()
  compiled = fn.lower(jax.random.key(0), xd, tol=FLAGS.kmeans_tol, **kw).compile()
  compile_s = time.perf_counter() - t0
  ours = []
  for rep in range(FLAGS.repeats):
    t0 = time.perf_counter()
    res = jax.block_until_ready(compiled(jax.random.key(rep), xd, tol=FLAGS.kmeans_tol))
    secs = time.perf_counter() - t0
    ours.append({"seconds": secs, "iterations": int(res.iterations),
                 "inertia": float(res.inertia)})
    print(f"  jaxal   repeat {rep}: {secs:8.2f} s, {int(res.iterations)} iterations", flush=True)
  theirs = _bench_sklearn(x)
  med = lambda runs, k: statistics.median(r[k] for r in runs)
  ratio = med(theirs, "seconds") / med(ours, "seconds")
  inertia = med(ours, "inertia") / med(theirs, "inertia")
  print(f"\nkmeans: {FLAGS.kmeans_n} x {FLAGS.kmeans_d}, k={FLAGS.kmeans_k}, median of "
        f"{FLAGS.repeats}, backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print("|         | seconds | iterations | inertia |")
  print("|---------|---------|------------|---------|")
  for name, runs in (("jaxal", ours), ("sklearn", theirs)):
    print(f"| {name:7} | {med(runs, 'seconds'):7.2f} | {med(runs, 'iterations'):10g} | "
          f"{med(runs, 'inertia'):.5g} |")
  print(f"sklearn / jaxal time: {ratio:.2f}x (compile {compile_s:.1f}s excluded); "
        f"inertia jaxal / sklearn {inertia:.4f}")
  return {"workload": "kmeans", "n": FLAGS.kmeans_n, "d": FLAGS.kmeans_d, "k": FLAGS.kmeans_k,
          "max_iter": FLAGS.kmeans_max_iter, "tol": FLAGS.kmeans_tol, "env": common.env(),
          "jaxal": {"runs": ours, "compile_seconds": compile_s}, "sklearn": {"runs": theirs},
          "ratio_sklearn_over_jaxal": ratio, "inertia_ratio_jaxal_over_sklearn": inertia}
