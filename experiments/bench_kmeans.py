"""Speed of jaxal.kmeans against scikit-learn's KMeans on Gaussian-mixture features.

  python -m experiments.bench_kmeans [--n 50000 --d 512 --k 1000 --repeats 3 --max_iter 100
                                      --tol 1e-4 --out kmeans_bench.json]

Both sides: same data (float32), same k, greedy k-means++ seeding, n_init=1, same max_iter and tol
(scikit-learn's definition of tol, which jaxal.kmeans follows). Ours is jitted; the compilation is
timed on its own, runs are timed after it (median over `--repeats` seeds, each run blocks until
done). scikit-learn runs in the same process with its OpenMP threads, and with BLAS limited to one
thread (`--sklearn_blas_threads 1`, the default): its Lloyd loop sets that limit itself, but its
k-means++ calls multi-threaded OpenBLAS on small float64 blocks, which in a process where XLA's CPU
thread pool is alive ran ~40x slower on a 2-core machine (10k x 128, k=200: 15.9 s vs 0.37 s).
Prints a table and writes the same figures to `--out` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from jaxal.kmeans import kmeans, kmeans_plus_plus

STATIC = ("k", "max_iter", "n_init", "chunk")


def make_data(n: int, d: int, n_components: int, seed: int, spread: float = 1.0) -> np.ndarray:
  """[n, d] float32 points from a mixture of `n_components` isotropic Gaussians with unit noise and
  means drawn with standard deviation `spread` (1.0: neighbouring components overlap, so Lloyd needs
  a realistic number of iterations), a stand-in for network features."""
  rng = np.random.default_rng(seed)
  means = rng.normal(scale=spread, size=(n_components, d)).astype(np.float32)
  comp = rng.integers(0, n_components, size=n)
  x = means[comp]
  x += rng.normal(size=(n, d)).astype(np.float32)
  return x


def timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def bench_ours(x, args):
  x = jax.device_put(x)  # no host-to-device copy inside the timings
  kw = dict(k=args.k, max_iter=args.max_iter, tol=args.tol, n_init=1, chunk=args.chunk)
  fn = jax.jit(kmeans, static_argnames=STATIC)
  compiled, compile_s = timed(lambda: fn.lower(jax.random.key(0), x, **kw).compile())
  runs = []
  for rep in range(args.repeats):
    res, secs = timed(lambda: jax.block_until_ready(compiled(jax.random.key(rep), x, tol=args.tol)))
    runs.append(dict(seconds=secs, iterations=int(res.iterations), inertia=float(res.inertia),
                     converged=bool(res.converged)))
    print(f"  jaxal   repeat {rep}: {secs:8.2f} s, {int(res.iterations)} iterations, "
          f"inertia {float(res.inertia):.6g}", flush=True)
  out = dict(compile_seconds=compile_s, runs=runs)
  if args.time_init:  # the k-means++ seeding alone, compiled on its own
    pp = jax.jit(kmeans_plus_plus, static_argnames=("k", "chunk"))
    cpp, pp_compile = timed(lambda: pp.lower(jax.random.key(0), x, k=args.k,
                                             chunk=args.chunk).compile())
    _, pp_secs = timed(lambda: jax.block_until_ready(cpp(jax.random.key(0), x)))
    out.update(init_compile_seconds=pp_compile, init_seconds=pp_secs)
    print(f"  jaxal   k-means++ seeding alone: {pp_secs:.2f} s", flush=True)
  return out


def bench_sklearn(x, args):
  runs = []
  for rep in range(args.sklearn_repeats):
    km = KMeans(n_clusters=args.k, init="k-means++", n_init=1, max_iter=args.max_iter, tol=args.tol,
                random_state=rep)
    limit = args.sklearn_blas_threads or None
    with threadpool_limits(limits=limit, user_api="blas"):
      _, secs = timed(lambda: km.fit(x))
    runs.append(dict(seconds=secs, iterations=int(km.n_iter_), inertia=float(km.inertia_)))
    print(f"  sklearn repeat {rep}: {secs:8.2f} s, {km.n_iter_} iterations, "
          f"inertia {km.inertia_:.6g}", flush=True)
  return dict(runs=runs)


def summary(runs):
  return dict(seconds=statistics.median(r["seconds"] for r in runs),
              iterations=statistics.median(r["iterations"] for r in runs),
              inertia=statistics.median(r["inertia"] for r in runs))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--n", type=int, default=50_000)
  p.add_argument("--d", type=int, default=512)
  p.add_argument("--k", type=int, default=1000)
  p.add_argument("--components", type=int, default=None,
                 help="Gaussian components in the data (default: k)")
  p.add_argument("--spread", type=float, default=1.0,
                 help="standard deviation of the component means (noise is 1)")
  p.add_argument("--sklearn_blas_threads", type=int, default=1,
                 help="BLAS threads during sklearn's fit (0: leave as is); see the module doc")
  p.add_argument("--max_iter", type=int, default=100)
  p.add_argument("--tol", type=float, default=1e-4)
  p.add_argument("--chunk", type=int, default=4096)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--sklearn_repeats", type=int, default=None, help="default: --repeats")
  p.add_argument("--time_init", action="store_true", help="also time the k-means++ seeding alone")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default="kmeans_bench.json")
  args = p.parse_args(argv)
  if args.sklearn_repeats is None:
    args.sklearn_repeats = args.repeats

  x = make_data(args.n, args.d, args.components or args.k, args.seed, args.spread)
  env = dict(backend=jax.default_backend(), devices=[str(dv) for dv in jax.devices()],
             cpu_count=os.cpu_count(), jax=jax.__version__, python=platform.python_version())
  print(f"n={args.n} d={args.d} k={args.k} max_iter={args.max_iter} tol={args.tol} "
        f"chunk={args.chunk} on {env['backend']} ({env['cpu_count']} CPUs)", flush=True)

  ours = bench_ours(x, args)
  theirs = bench_sklearn(x, args)
  so, st = summary(ours["runs"]), summary(theirs["runs"])
  ratio = st["seconds"] / so["seconds"]

  print()
  print(f"| {'':8} | {'seconds (median)':>16} | {'compile s':>9} | {'iterations':>10} | "
        f"{'inertia':>14} |")
  print(f"|{'-' * 10}|{'-' * 18}|{'-' * 11}|{'-' * 12}|{'-' * 16}|")
  print(f"| {'jaxal':8} | {so['seconds']:16.2f} | {ours['compile_seconds']:9.2f} | "
        f"{so['iterations']:10g} | {so['inertia']:14.6g} |")
  print(f"| {'sklearn':8} | {st['seconds']:16.2f} | {'-':>9} | {st['iterations']:10g} | "
        f"{st['inertia']:14.6g} |")
  print(f"\nsklearn / jaxal time ratio: {ratio:.2f}  (>1 means jaxal is faster; compile excluded)")
  print(f"inertia jaxal / sklearn: {so['inertia'] / st['inertia']:.4f}")

  record = dict(config=vars(args), env=env, jaxal=dict(summary=so, **ours),
                sklearn=dict(summary=st, **theirs), ratio_sklearn_over_jaxal=ratio,
                inertia_ratio_jaxal_over_sklearn=so["inertia"] / st["inertia"])
  with open(args.out, "w") as f:
    json.dump(record, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
