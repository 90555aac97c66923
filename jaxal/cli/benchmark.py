r"""Speed benchmarks. Each workload prints a table of medians over repeats with the ratio to a baseline
measured in the same command, and writes the same figures to a JSON file (--out, default
benchmark-<workload>.json).

  jaxal-benchmark WORKLOAD [--data_dir=...] [--repeats=N] [--torch_python=...]

Workloads:
  fmnist-bald       Fashion-MNIST, LeNet-5 (dropout 0.5), 100 balanced initial labels, 10 per round,
                    re-initialised and trained 50 epochs each round (batch 64, SGD lr 0.01, momentum
                    0.9), BALD with 20 MC-dropout samples over the whole pool, test accuracy every
                    round, --rounds rounds then a final training. One run per seed (--repeats seeds).
                    jaxal three ways: the production path (`jaxal.run`: one compiled program per
                    round), the whole run as one `lax.scan` program (`jaxal.run_scanned`), and the
                    round split into separately compiled phases (train / evaluate / score /
                    select+tell) for the time breakdown. Compilation is timed on its own (ahead of
                    time); --whole_command also times `python -m jaxal.cli.run` end to end (cold
                    and warm compilation cache), --roofline places each phase under the
                    machine's measured matmul peak and memory bandwidth. Baselines
                    (experiments/torch_reference.py, in a subprocess with --torch_python, or
                    read from --torch_json): a plain PyTorch loop with the same shared-trunk
                    scoring (--baselines=plain, the default) and baal 2.x's own loop (baal),
                    each timed as a whole command and per phase.
  train-throughput  Samples/s of one training epoch over 1,024 labels (batch 64, SGD), for lenet5
                    (28x28x1) and cnn3 (32x32x3): jaxal's `training.fit` with the backend's default
                    convolution against the same with XLA's own convolution (`JAXAL_CONV_IMPL=xla`,
                    i.e. plain `flax.linen.Conv`; on CPU so slow in the loop that it is timed once
                    over 256 labels), and plain PyTorch with --torch_python.
  train-parity      The training alone, for accuracy: LeNet-5 trained as in fmnist-bald on the same
                    balanced random labeled sets (sizes --parity_sizes, --repeats seeds) in jaxal
                    and, with --torch_python, in plain PyTorch; test accuracy per set and the
                    paired difference (mean ± standard error over the seeds).
  score-throughput  BALD with S MC-dropout samples over a 60,000-image pool (MNIST's training set
                    when --data_dir is given, random 28x28 images otherwise), for gal_cnn and lenet5:
                    jaxal's scoring (the network before the first dropout computed once per item)
                    against S separate full stochastic passes over the pool, as PyTorch libraries do.
  pool-scale        A real run through the CLI over a generated pool of N images (Fashion-MNIST with
                    random shifts and noise, a memory-mapped .npy) for N in --pool_sizes: LeNet-5,
                    BALD with --mc_samples MC-dropout samples over the whole pool, --scale_rounds
                    rounds, --pool_on=host (streamed) and with --pool_mode=both the whole pool on
                    the device; wall time, peak RSS and per-round seconds of each run.
  strategy-memory   BADGE (K = 100) and BatchBALD (K = 10, M = 1000) selection over a --pool_size
                    pool: the compiled selection's temporary memory against the arrays a direct
                    implementation forms, and the selection time.
  seeds             --seeds_list (1,3,8) seeds of fmnist-bald in one program (`--seed_batching`)
                    against the same seeds run one after another (single-seed runs of the same
                    compiled program).
  kmeans            jaxal.kmeans on --kmeans_n x --kmeans_d Gaussian-mixture features with
                    k = --kmeans_k against scikit-learn's KMeans (k-means++, n_init=1, same max_iter
                    and tol), in this process; scikit-learn's BLAS limited to one thread (see
                    `_bench_sklearn`).
"""
from __future__ import annotations

import sys

from absl import flags

from jaxal.cli import start

from jaxal.cli.benchmarks import (fmnist_bald, kmeans, pool_scale, score_throughput, seeds,
                                    strategy_memory, train_parity, train_throughput)
from jaxal import reporting

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "", "fmnist-bald / seeds / train-parity: the Fashion-MNIST IDX "
                    "folder (default $JAXAL_SHARED_DATA/fashion_mnist); score-throughput: an MNIST "
                    "IDX folder (random images if empty).")
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported); fmnist-bald and "
                     "train-parity: seeds.")
flags.DEFINE_integer("rounds", 10, "fmnist-bald / seeds: acquisition rounds.")
flags.DEFINE_integer("epochs", 50, "fmnist-bald / seeds / train-parity: training epochs (per "
                     "round).")
flags.DEFINE_integer("train_limit", 0, "fmnist-bald / seeds / train-parity: a class-stratified "
                     "sample of this many training images and a tenth as many test images (smoke "
                     "runs; 0 = all).")
flags.DEFINE_string("torch_python", "", "Python interpreter with torch (and baal) to run "
                    "experiments/torch_reference.py as the baseline in this command.")
flags.DEFINE_string("torch_json", "", "fmnist-bald: saved outputs of torch_reference.py "
                    "(comma-separated, one per baseline) to use instead of running them.")
flags.DEFINE_string("baselines", "plain", "fmnist-bald: the PyTorch baselines run with "
                    "--torch_python, comma-separated: plain (a plain PyTorch loop with the "
                    "shared-trunk scoring: the strongest) and baal (baal's own loop).")
flags.DEFINE_boolean("whole_command", False, "fmnist-bald: also time the whole jaxal command "
                     "(`python -m jaxal.cli.run` with the protocol's flags, start-up, data loading "
                     "and compilation included), once with an empty compilation cache and once "
                     "again with the cache it filled.")
flags.DEFINE_boolean("roofline", True, "fmnist-bald: measure the machine's matmul peak and memory "
                     "bandwidth and print each phase's place under them.")
flags.DEFINE_string("torch_init", "torch", "fmnist-bald: the baseline's initialisation, torch "
                    "(PyTorch's defaults) or flax (the initialisers jaxal uses).")
flags.DEFINE_boolean("scan", True, "fmnist-bald: also time the whole run as one lax.scan program.")
flags.DEFINE_string("parity_sizes", "190,200", "train-parity: labeled-set sizes, comma-separated "
                    "(the largest a multiple of 10: balanced sets).")
flags.DEFINE_string("seeds_list", "1,3,8", "seeds: seed counts run together.")
flags.DEFINE_string("seed_batching", "auto", "seeds: vmap, map or auto (see jaxal.round.over_seeds).")
flags.DEFINE_integer("pool_size", 60000, "score-throughput: pool items to score.")
flags.DEFINE_integer("mc_samples", 20, "S, MC-dropout samples.")
flags.DEFINE_integer("chunk", 1024, "Items per scoring / evaluation chunk.")
flags.DEFINE_string("models", "gal_cnn,lenet5", "score-throughput: models to measure.")
flags.DEFINE_integer("kmeans_n", 50000, "kmeans: points.")
flags.DEFINE_integer("kmeans_d", 512, "kmeans: dimension.")
flags.DEFINE_integer("kmeans_k", 1000, "kmeans: clusters.")
flags.DEFINE_integer("kmeans_max_iter", 100, "kmeans: Lloyd iterations at most.")
flags.DEFINE_float("kmeans_tol", 1e-4, "kmeans: tolerance (scikit-learn's definition).")
flags.DEFINE_string("pool_sizes", "", "pool-scale: pool sizes, each measured in its own subprocess "
                    "(e.g. 100000,300000,1000000); empty: only --pool_size, in this process.")
flags.DEFINE_string("pool_mode", "both", "pool-scale: host (the pool streamed from its .npy), "
                    "device (the whole pool on the device) or both.")
flags.DEFINE_integer("stream_chunk", 16384, "pool-scale: rows per streamed block (--host_block; "
                     "scored in inner chunks of --chunk).")
flags.DEFINE_string("out", "", "JSON output path (default benchmark-<workload>.json).")

# One module of jaxal/cli/benchmarks/ per workload (shared helpers in common.py).
WORKLOADS = {"fmnist-bald": fmnist_bald.fmnist_bald,
             "train-throughput": train_throughput.train_throughput,
             "train-parity": train_parity.train_parity,
             "score-throughput": score_throughput.score_throughput,
             "seeds": seeds.seeds_workload,
             "kmeans": kmeans.kmeans_workload,
             "pool-scale": pool_scale.pool_scale,
             "strategy-memory": strategy_memory.strategy_memory}


def main(argv):
  if len(argv) != 2 or argv[1] not in WORKLOADS:
    raise SystemExit(f"error: name one workload; accepted: {', '.join(WORKLOADS)}.")
  workload = argv[1]
  out = WORKLOADS[workload]()
  out["command"] = " ".join(sys.argv)
  path = FLAGS.out or f"benchmark-{workload}.json"
  reporting.write_json_atomic(path, out)
  print(f"written to {path}")


def cli(argv=None):
  """The `jaxal-benchmark` console script (`--help` exits 0)."""
  start(main, __name__, argv)


if __name__ == "__main__":
  cli()
