"""seeds: several seeds of fmnist-bald run in one program.

--seeds_list (1,3,8) seeds of the fmnist-bald protocol (see `fmnist_bald`) run together
(`--seed_batching`: vmap, map or auto, see `jaxal.round.over_seeds`).

Baseline: the same seeds run one after another (single-seed runs of the same compiled program)."""
from __future__ import annotations

import os

import jax
from absl import flags

from jaxal.cli.benchmarks import common

FLAGS = flags.FLAGS


def seeds_workload() -> dict:
  rounds = FLAGS.rounds
  counts = [int(c) for c in FLAGS.seeds_list.split(",") if c]
  p = common.fmnist_problem(rounds)
  single, fns = [], None
  for s in range(max(counts)):
    r = common.fused(p, [s], rounds, FLAGS.seed_batching, fns=fns)
    fns = r.pop("fns")
    single.append(r["wall_seconds"])
    print(f"one seed ({s}): {r['wall_seconds']:.1f}s", flush=True)
  rows = []
  for n in counts:
    r = common.fused(p, list(range(n)), rounds, FLAGS.seed_batching)
    sequential = sum(single[:n])
    rows.append({"seeds": n, "together_seconds": r["wall_seconds"],
                 "compile_seconds": r["compile_seconds"], "sequential_seconds": sequential,
                 "together_over_one_seed": r["wall_seconds"] / single[0],
                 "sequential_over_together": sequential / r["wall_seconds"]})
    print(f"{n} seeds together: {r['wall_seconds']:.1f}s", flush=True)
  print(f"\nseeds: fmnist-bald, {rounds} rounds + final, seed batching {FLAGS.seed_batching}, "
        f"backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print("| seeds | together s | one after another s | together / one seed | speed-up |")
  print("|-------|------------|---------------------|---------------------|----------|")
  for r in rows:
    print(f"| {r['seeds']:5d} | {r['together_seconds']:10.1f} | {r['sequential_seconds']:19.1f} | "
          f"{r['together_over_one_seed']:18.2f}x | {r['sequential_over_together']:7.2f}x |")
  return {"workload": "seeds", "rounds": rounds, "epochs": FLAGS.epochs,
          "seed_batching": FLAGS.seed_batching, "single_seed_seconds": single, "results": rows,
          "env": common.env(), "peak_rss_mb": common.peak_rss_mb()}
