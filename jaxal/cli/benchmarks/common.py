"""Helpers shared by the benchmark workloads: the environment record, peak resident memory, timing
and ahead-of-time compilation, mean and standard error, the baseline run of
experiments/torch_reference.py, and the Fashion-MNIST active-learning problem (with its production
run, `fused`) that fmnist-bald and seeds measure. Flags are read through `absl.flags.FLAGS`; they
are defined by `jaxal.cli.benchmark`."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

import jaxal
from jaxal import driver, models, reporting, training
from jaxal.round import Round
from jaxal.state import LabeledArrays, TrainConfig

FLAGS = flags.FLAGS


def env() -> dict:
  return {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "python": platform.python_version(), "machine": platform.machine()}


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed(fn, *args, repeats: int):
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times), times


def compile_aot(fn, *args):
  """Ahead-of-time compilation: (compiled callable, seconds spent tracing and compiling)."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def mean_se(values) -> tuple[float, float]:
  m, se = reporting.mean_and_stderr(np.asarray(values, np.float64)[:, None])
  return float(m[0]), float(se[0])


def torch_reference(workload: str, *extra: str) -> dict | None:
  """Runs experiments/torch_reference.py with --torch_python; None when no interpreter is given."""
  if not FLAGS.torch_python:
    return None
  script = os.path.join("experiments", "torch_reference.py")
  if not os.path.isfile(script):
    raise SystemExit("error: --torch_python runs the repository's experiments/torch_reference.py; "
                     "run the benchmark from the repository's root.")
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "torch.json")
    cmd = [FLAGS.torch_python, script, workload, f"--out={out}", *extra]
    print("baseline: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
      return json.load(f)


# -------------------------------------------------------------- the Fashion-MNIST problem

def fmnist_dir() -> str:
  path = FLAGS.data_dir or os.path.join(os.environ.get("JAXAL_SHARED_DATA", ""), "fashion_mnist")
  if not os.path.isfile(os.path.join(path, "train-images-idx3-ubyte.gz")):
    raise SystemExit(f"error: --data_dir={path!r} holds no Fashion-MNIST IDX files "
                     "(train-images-idx3-ubyte.gz, ...); pass the folder or set JAXAL_SHARED_DATA.")
  return path


@dataclasses.dataclass
class Problem:
  model: object
  tx: object
  round_fn: Round
  pool: LabeledArrays
  test: LabeledArrays
  y: np.ndarray
  train_index: np.ndarray | None = None   # pool position -> position in the whole training set


def fmnist_problem(rounds: int) -> Problem:
  from jaxal.data import channel_stats, load_dataset, normalize, subsample
  ds = load_dataset("idx", fmnist_dir())
  if FLAGS.train_limit:
    ds = subsample(ds, FLAGS.train_limit, max(FLAGS.train_limit // 10, 10))
  mean, std = channel_stats(ds.x_train)
  pool = LabeledArrays(jnp.asarray(normalize(ds.x_train, mean, std)),
                            jnp.asarray(ds.y_train, jnp.int32))
  test = LabeledArrays(jnp.asarray(normalize(ds.x_test, mean, std)),
                            jnp.asarray(ds.y_test, jnp.int32))
  tc = TrainConfig(epochs=FLAGS.epochs, batch_size=64, optimizer="sgd", learning_rate=0.01,
                   momentum=0.9, reinit=True, eval_batch_size=FLAGS.chunk)
  model = models.get_model("lenet5", 10)
  tx = training.make_optimizer(tc)
  round_fn = jaxal.make_round(model, tx, jaxal.strategies.bald(),
                              budget=jaxal.Budget(initial_size=100, query_size=10, rounds=rounds),
                              train=tc, uncertainty=jaxal.Uncertainty(
                                  "mc_dropout", mc_samples=FLAGS.mc_samples))
  return Problem(model, tx, round_fn, pool, test, np.asarray(ds.y_train),
                 np.asarray(ds.train_index))


def initial_states(p: Problem, seeds) -> object:
  return p.round_fn.init_states(seeds, splits(p, seeds), p.pool)


def splits(p: Problem, seeds):
  from jaxal.data import make_splits
  return [make_splits(p.y, 10, 100, 0, s) for s in seeds]


def fused(p: Problem, seeds, rounds: int, seed_batching: str = "auto", fns=None) -> dict:
  """The production path: `jaxal.run` with one compiled program per round (compiled ahead)."""
  states = initial_states(p, seeds)
  compile_s = 0.0
  if fns is None:
    step, final = driver.make_round_fns(p.round_fn, seed_batching)
    step, c1 = compile_aot(step, states, p.pool, p.test)
    final, c2 = compile_aot(final, states, p.pool, p.test)
    fns, compile_s = (step, final), c1 + c2
  t0 = time.perf_counter()
  assert rounds == p.round_fn.budget.rounds, (rounds, p.round_fn.budget.rounds)
  records = driver.run(p.round_fn, p.pool, p.test, list(seeds), splits(p, seeds), fns=fns,
                       states=states)
  wall = time.perf_counter() - t0
  return {"fns": fns, "compile_seconds": compile_s, "wall_seconds": wall,
          "round_seconds": [r["seconds"] for r in records[0]["rounds"]],
          "final_accuracy": [rec["rounds"][-1]["test_accuracy"] for rec in records],
          "accuracy_curve": [[r["test_accuracy"] for r in rec["rounds"]] for rec in records],
          "selected": [[r["selected"] for r in rec["rounds"]] for rec in records]}
