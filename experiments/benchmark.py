r"""Speed benchmarks. Each workload prints a table of medians over repeats with the ratio to a baseline
measured in the same command, and writes the same figures to a JSON file (--out, default
benchmark-<workload>.json).

  python -m experiments.benchmark WORKLOAD [--data_dir=...] [--repeats=N] [--torch_python=...]

Workloads:
  fmnist-bald       Fashion-MNIST, LeNet-5 (dropout 0.5), 100 balanced initial labels, 10 per round,
                    re-initialised and trained 50 epochs each round (batch 64, SGD lr 0.01, momentum
                    0.9), BALD with 20 MC-dropout samples over the whole pool, test accuracy every
                    round, --rounds rounds then a final training. One run per seed (--repeats seeds).
                    jaxal three ways: the production path (`loop.run`: one compiled program per
                    round), the whole run as one `lax.scan` program (`loop.run_scanned`), and the
                    round split into separately compiled phases (train / evaluate / score /
                    select+tell) for the time breakdown. Compilation is timed on its own (ahead of
                    time). Baseline: baal 2.x running the same protocol in PyTorch
                    (experiments/torch_reference.py), in a subprocess with --torch_python, or read
                    from --torch_json (an earlier output of that script).
  train-throughput  Samples/s of one training epoch over 1,024 labels (batch 64, SGD), for lenet5
                    (28x28x1) and cnn3 (32x32x3): jaxal's `training.fit` with the backend's default
                    convolution against the same with XLA's own convolution (`JAXAL_CONV_IMPL=xla`,
                    i.e. plain `flax.linen.Conv`; on CPU so slow in the loop that it is timed once
                    over 256 labels), and plain PyTorch with --torch_python.
  score-throughput  BALD with S MC-dropout samples over a 60,000-image pool (MNIST's training set
                    when --data_dir is given, random 28x28 images otherwise), for gal_cnn and lenet5:
                    jaxal's scoring (the network before the first dropout computed once per item)
                    against S separate full stochastic passes over the pool, as PyTorch libraries do.
  pool-scale        BALD (S = --mc_samples MC-dropout passes of an MLP) and top-10 selection over a
                    synthetic pool of --pool_size x --feature_dim Gaussian class clusters, time and
                    peak resident memory: streamed from a memory-mapped .npy on disk chunk by chunk
                    (`jaxal.streaming.stream_top_k`) against the whole pool held on the device
                    (`scoring.score_pool` + `strategies.top_k`). With --pool_sizes each size and mode
                    runs in its own subprocess, so each peak is its own.
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

import contextlib
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxal import loop, models, reporting, scoring, strategies, training
from jaxal.models import conv as conv_lib
from jaxal.state import RoundConfig, TrainConfig

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "", "fmnist-bald / seeds: the Fashion-MNIST IDX folder (default "
                    "$JAXAL_SHARED_DATA/fashion_mnist); score-throughput: an MNIST IDX folder "
                    "(random images if empty).")
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported); fmnist-bald: seeds.")
flags.DEFINE_integer("rounds", 10, "fmnist-bald / seeds: acquisition rounds.")
flags.DEFINE_integer("epochs", 50, "fmnist-bald / seeds: training epochs per round.")
flags.DEFINE_string("torch_python", "", "Python interpreter with torch (and baal) to run "
                    "experiments/torch_reference.py as the baseline in this command.")
flags.DEFINE_string("torch_json", "", "fmnist-bald: a saved output of torch_reference.py to use "
                    "as the baseline instead of running it.")
flags.DEFINE_string("torch_init", "torch", "fmnist-bald: the baseline's initialisation, torch "
                    "(PyTorch's defaults) or flax (the initialisers jaxal uses).")
flags.DEFINE_boolean("scan", True, "fmnist-bald: also time the whole run as one lax.scan program.")
flags.DEFINE_string("seeds_list", "1,3,8", "seeds: seed counts run together.")
flags.DEFINE_string("seed_batching", "auto", "seeds: vmap, map or auto (see jaxal.loop.over_seeds).")
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
flags.DEFINE_string("pool_mode", "both", "pool-scale: stream (host memmap fed chunk by chunk), "
                    "memory (the whole pool on the device) or both.")
flags.DEFINE_integer("feature_dim", 128, "pool-scale: feature dimension of the synthetic pool.")
flags.DEFINE_integer("stream_chunk", 16384, "pool-scale: rows per streamed block (scored in "
                     "inner chunks of 1024).")
flags.DEFINE_string("out", "", "JSON output path (default benchmark-<workload>.json).")


def _env() -> dict:
  return {"backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
          "cpu_count": os.cpu_count(), "jax": jax.__version__,
          "python": platform.python_version(), "machine": platform.machine()}


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


def _compile(fn, *args):
  """Ahead-of-time compilation: (compiled callable, seconds spent tracing and compiling)."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _mean_se(values) -> tuple[float, float]:
  m, se = reporting.mean_and_stderr(np.asarray(values, np.float64)[:, None])
  return float(m[0]), float(se[0])


def _torch_reference(workload: str, *extra: str) -> dict | None:
  """Runs experiments/torch_reference.py with --torch_python; None when no interpreter is given."""
  if not FLAGS.torch_python:
    return None
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py")
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "torch.json")
    cmd = [FLAGS.torch_python, script, workload, f"--out={out}", *extra]
    print("baseline: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
      return json.load(f)


# --------------------------------------------------------------------------------- fmnist-bald

def _fmnist_dir() -> str:
  path = FLAGS.data_dir or os.path.join(os.environ.get("JAXAL_SHARED_DATA", ""), "fashion_mnist")
  if not os.path.isfile(os.path.join(path, "train-images-idx3-ubyte.gz")):
    raise SystemExit(f"error: --data_dir={path!r} holds no Fashion-MNIST IDX files "
                     "(train-images-idx3-ubyte.gz, ...); pass the folder or set JAXAL_SHARED_DATA.")
  return path


@dataclasses.dataclass
class _Problem:
  model: object
  tx: object
  cfg: RoundConfig
  pool: loop.LabeledArrays
  test: loop.LabeledArrays
  y: np.ndarray


def _fmnist_problem(rounds: int) -> _Problem:
  from jaxal.data import channel_stats, load_dataset, normalize
  ds = load_dataset("idx", _fmnist_dir())
  mean, std = channel_stats(ds.x_train)
  pool = loop.LabeledArrays(jnp.asarray(normalize(ds.x_train, mean, std)),
                            jnp.asarray(ds.y_train, jnp.int32))
  test = loop.LabeledArrays(jnp.asarray(normalize(ds.x_test, mean, std)),
                            jnp.asarray(ds.y_test, jnp.int32))
  tc = TrainConfig(epochs=FLAGS.epochs, batch_size=64, optimizer="sgd", learning_rate=0.01,
                   momentum=0.9, reinit=True, eval_batch_size=FLAGS.chunk)
  cfg = RoundConfig(strategy="bald", query_size=10, capacity=100 + rounds * 10, num_classes=10,
                    train=tc, uncertainty="mc_dropout", mc_samples=FLAGS.mc_samples)
  model = models.get_model("lenet5", 10)
  return _Problem(model, training.make_optimizer(tc), cfg, pool, test, np.asarray(ds.y_train))


def _states(p: _Problem, seeds) -> object:
  from jaxal.data import make_splits
  return loop.stack_states([
      loop.init_state(s, make_splits(p.y, 10, 100, 0, s), p.y, p.model, p.tx, p.pool.x)
      for s in seeds])


def _splits(p: _Problem, seeds):
  from jaxal.data import make_splits
  return [make_splits(p.y, 10, 100, 0, s) for s in seeds]


def _fused(p: _Problem, seeds, rounds: int, seed_batching: str = "auto", fns=None) -> dict:
  """The production path: `loop.run` with one compiled program per round (compiled ahead)."""
  states = _states(p, seeds)
  compile_s = 0.0
  if fns is None:
    step, final = loop.make_round_fns(p.model, p.tx, p.cfg, seed_batching)
    step, c1 = _compile(step, states, p.pool, p.test)
    final, c2 = _compile(final, states, p.pool, p.test)
    fns, compile_s = (step, final), c1 + c2
  t0 = time.perf_counter()
  records = loop.run(p.model, p.tx, p.cfg, p.pool, p.test, list(seeds), _splits(p, seeds), rounds,
                     fns=fns, states=states)
  wall = time.perf_counter() - t0
  return {"fns": fns, "compile_seconds": compile_s, "wall_seconds": wall,
          "round_seconds": [r["seconds"] for r in records[0]["rounds"]],
          "final_accuracy": [rec["rounds"][-1]["test_accuracy"] for rec in records],
          "accuracy_curve": [[r["test_accuracy"] for r in rec["rounds"]] for rec in records],
          "selected": [[r["selected"] for r in rec["rounds"]] for rec in records]}


def _scanned(p: _Problem, seeds, rounds: int) -> dict:
  states = _states(p, seeds)
  fn, compile_s = _compile(loop.make_scanned_fn(p.model, p.tx, p.cfg, rounds), states, p.pool,
                           p.test)
  t0 = time.perf_counter()
  records = loop.run_scanned(p.model, p.tx, p.cfg, p.pool, p.test, list(seeds), _splits(p, seeds),
                             rounds, fn=fn, states=states)
  return {"compile_seconds": compile_s, "wall_seconds": time.perf_counter() - t0,
          "final_accuracy": [rec["rounds"][-1]["test_accuracy"] for rec in records],
          "selected": [[r["selected"] for r in rec["rounds"]] for rec in records]}


def _phased(p: _Problem, seed: int, rounds: int) -> dict:
  """One seed, the round split into separately compiled phases, each timed (device-synchronised)."""
  cfg, model = p.cfg, p.model
  strategy = strategies.get_strategy(cfg.strategy)
  # Pool and test arrays are arguments (closing over them would embed them in the programs).
  train = jax.jit(lambda st, pool: loop.train(st, pool, model=model, tx=p.tx, cfg=cfg))
  evaluate = jax.jit(lambda st, test: loop.evaluate(model, st.variables, test.x, test.y, cfg))
  score = jax.jit(lambda st, pool: loop._pool_scores(st, pool.x, model, cfg, strategy))  # pylint: disable=protected-access

  def select_tell(st, scores, pool):
    idx = strategies.top_k(scores, st.selectable & ~st.labeled, cfg.query_size)
    return loop.tell(st, idx, pool.y[idx]), idx
  select_tell = jax.jit(select_tell)

  state = jax.tree.map(lambda a: a[0], _states(p, [seed]))
  compile_s = {}
  train, compile_s["train"] = _compile(train, state, p.pool)
  evaluate, compile_s["evaluate"] = _compile(evaluate, state, p.test)
  score, compile_s["score"] = _compile(score, state, p.pool)
  dummy = jnp.zeros(p.pool.y.shape, jnp.float32)
  select_tell, compile_s["select"] = _compile(select_tell, state, dummy, p.pool)
  phases = {k: [] for k in ("train", "evaluate", "score", "select")}
  selected = []

  def timed(name, fn, *args):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    phases[name].append(time.perf_counter() - t0)
    return out

  for _ in range(rounds):
    state, _ = timed("train", train, state, p.pool)
    timed("evaluate", evaluate, state, p.test)
    scores = timed("score", score, state, p.pool)
    state, idx = timed("select", select_tell, state, scores, p.pool)
    selected.append(np.asarray(idx).tolist())
  return {"compile_seconds": compile_s, "phase_seconds": phases, "selected": selected}


def fmnist_bald() -> dict:
  rounds, seeds = FLAGS.rounds, list(range(FLAGS.repeats))
  p = _fmnist_problem(rounds)
  runs, fns = [], None
  for s in seeds:
    r = _fused(p, [s], rounds, fns=fns)
    fns = r.pop("fns")
    runs.append(r)
    print(f"jaxal seed {s}: {r['wall_seconds']:.1f}s for {rounds} rounds + final "
          f"(compile {r['compile_seconds']:.1f}s), final accuracy {r['final_accuracy'][0]:.4f}",
          flush=True)
  phased = _phased(p, 0, rounds)
  same_as_fused = phased["selected"] == runs[0]["selected"][0][:rounds]
  scanned = _scanned(p, [0], rounds) if FLAGS.scan else None
  jax_acc = [r["final_accuracy"][0] for r in runs]
  per_round = [statistics.median(r["round_seconds"][:rounds]) for r in runs]
  out = {"workload": "fmnist-bald", "rounds": rounds, "seeds": seeds, "epochs": FLAGS.epochs,
         "mc_samples": FLAGS.mc_samples, "env": _env(),
         "jaxal": {"runs": runs, "wall_seconds_median": statistics.median(
                       r["wall_seconds"] for r in runs),
                   "round_seconds_median": statistics.median(per_round),
                   "compile_seconds": runs[0]["compile_seconds"],
                   "final_accuracy_mean_se": _mean_se(jax_acc),
                   "phased": phased, "phased_selects_as_fused": same_as_fused,
                   "scanned": scanned, "peak_rss_mb": _peak_rss_mb()}}
  torch = None
  if FLAGS.torch_json:
    with open(FLAGS.torch_json) as f:
      torch = json.load(f)
  else:
    torch = _torch_reference("fmnist-bald", f"--data_dir={_fmnist_dir()}", f"--rounds={rounds}",
                             f"--seeds={len(seeds)}", f"--epochs={FLAGS.epochs}",
                             f"--mc_samples={FLAGS.mc_samples}", f"--init={FLAGS.torch_init}")
  if torch is not None:
    t_acc = [r["rounds"][-1]["test_accuracy"] for r in torch["runs"]]
    t_wall = statistics.median(r["wall_seconds"] for r in torch["runs"])
    t_round = statistics.median(statistics.median(x["seconds"] for x in r["rounds"][:rounds])
                                for r in torch["runs"])
    out["baal"] = {**torch, "wall_seconds_median": t_wall, "round_seconds_median": t_round,
                   "final_accuracy_mean_se": _mean_se(t_acc),
                   "phase_seconds_median": {
                       k: statistics.median(statistics.median(x[k + "_seconds"] for x in
                                                              r["rounds"][:rounds])
                                            for r in torch["runs"])
                       for k in ("train", "score_select", "evaluate")}}
    out["ratio_jaxal_over_baal_wall"] = out["jaxal"]["wall_seconds_median"] / t_wall

  j = out["jaxal"]
  print(f"\nfmnist-bald: {rounds} rounds + final, {len(seeds)} seed(s), backend "
        f"{jax.default_backend()} ({os.cpu_count()} CPUs)")
  print(f"| {'':28} | {'jaxal':>10} | {'baal':>10} | {'ratio':>7} |")
  print(f"|{'-' * 30}|{'-' * 12}|{'-' * 12}|{'-' * 9}|")
  b = out.get("baal")
  def row(name, mine, theirs):
    ratio = f"{mine / theirs:6.3f}x" if theirs else "       "
    print(f"| {name:28} | {mine:10.2f} | {theirs if theirs else float('nan'):10.2f} | {ratio} |")
  row("run wall s (excl. compile)", j["wall_seconds_median"], b and b["wall_seconds_median"])
  row("s per round (median)", j["round_seconds_median"], b and b["round_seconds_median"])
  ph = {k: statistics.median(v) for k, v in phased["phase_seconds"].items()}
  row("  train s", ph["train"], b and b["phase_seconds_median"]["train"])
  row("  score+select s", ph["score"] + ph["select"], b and b["phase_seconds_median"]["score_select"])
  row("  evaluate s", ph["evaluate"], b and b["phase_seconds_median"]["evaluate"])
  print(f"compile: {j['compile_seconds']:.1f}s (round + final programs); phases "
        + ", ".join(f"{k} {v:.1f}s" for k, v in phased["compile_seconds"].items()))
  if scanned:
    print(f"lax.scan over rounds: {scanned['wall_seconds']:.1f}s (compile "
          f"{scanned['compile_seconds']:.1f}s), same selections: "
          f"{scanned['selected'] == runs[0]['selected']}")
  m, se = j["final_accuracy_mean_se"]
  print(f"final accuracy jaxal {m:.4f} ± {se:.4f}" + (
      f", baal {b['final_accuracy_mean_se'][0]:.4f} ± {b['final_accuracy_mean_se'][1]:.4f}"
      if b else "") + f" ({len(seeds)} seeds); phased path selects as fused: {same_as_fused}")
  return out


def seeds_workload() -> dict:
  rounds = FLAGS.rounds
  counts = [int(c) for c in FLAGS.seeds_list.split(",") if c]
  p = _fmnist_problem(rounds)
  single, fns = [], None
  for s in range(max(counts)):
    r = _fused(p, [s], rounds, FLAGS.seed_batching, fns=fns)
    fns = r.pop("fns")
    single.append(r["wall_seconds"])
    print(f"one seed ({s}): {r['wall_seconds']:.1f}s", flush=True)
  rows = []
  for n in counts:
    r = _fused(p, list(range(n)), rounds, FLAGS.seed_batching)
    sequential = sum(single[:n])
    rows.append({"seeds": n, "together_seconds": r["wall_seconds"],
                 "compile_seconds": r["compile_seconds"], "sequential_seconds": sequential,
                 "together_over_one_seed": r["wall_seconds"] / single[0],
                 "sequential_over_together": sequential / r["wall_seconds"]})
    print(f"{n} seeds together: {r['wall_seconds']:.1f}s", flush=True)
  print(f"\nseeds: fmnist-bald, {rounds} rounds + final, seed batching {FLAGS.seed_batching}, "
        f"backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print(f"| seeds | together s | one after another s | together / one seed | speed-up |")
  print(f"|-------|------------|---------------------|---------------------|----------|")
  for r in rows:
    print(f"| {r['seeds']:5d} | {r['together_seconds']:10.1f} | {r['sequential_seconds']:19.1f} | "
          f"{r['together_over_one_seed']:18.2f}x | {r['sequential_over_together']:7.2f}x |")
  return {"workload": "seeds", "rounds": rounds, "epochs": FLAGS.epochs,
          "seed_batching": FLAGS.seed_batching, "single_seed_seconds": single, "results": rows,
          "env": _env(), "peak_rss_mb": _peak_rss_mb()}


# ----------------------------------------------------------------------------- train-throughput

@contextlib.contextmanager
def _conv_impl(impl: str | None):
  old = os.environ.get(conv_lib.ENV_VAR)
  if impl is None:
    os.environ.pop(conv_lib.ENV_VAR, None)
  else:
    os.environ[conv_lib.ENV_VAR] = impl
  try:
    yield
  finally:
    if old is None:
      os.environ.pop(conv_lib.ENV_VAR, None)
    else:
      os.environ[conv_lib.ENV_VAR] = old


def train_throughput() -> dict:
  n = 1024
  tc = TrainConfig(epochs=1, batch_size=64, optimizer="sgd", learning_rate=0.01, momentum=0.9)
  tx = training.make_optimizer(tc)
  rng = np.random.default_rng(0)
  rows = []
  for name, shape in (("lenet5", (28, 28, 1)), ("cnn3", (32, 32, 3))):
    model = models.get_model(name, 10)
    x = jnp.asarray(rng.normal(size=(n, *shape)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, n).astype(np.int32))
    labeled = jnp.ones(n, bool)
    row = {"model": name}
    # XLA's own convolution gradients run so slowly inside `fit`'s loop on CPU (minutes per epoch
    # for cnn3) that the comparison with it is one epoch over the first 256 labels, timed once
    # after compilation, for both; the default path is also timed over 1,024 labels (median of
    # --repeats) for the comparison with PyTorch.
    for tag, impl, m, reps in (("default", None, n, FLAGS.repeats), ("default_256", None, 256, 1),
                               ("xla_conv", "xla", 256, 1)):
      lab = jnp.arange(n) < m
      with _conv_impl(impl):
        variables = training.init_variables(model, jax.random.PRNGKey(0), x[:1])
        fit = jax.jit(lambda v, o, k, lab=lab, m=m: training.fit(model, tx, v, o, k, x, y, lab,
                                                                  tc, m))
        opt_state = tx.init(variables["params"])
        fit_c, compile_s = _compile(fit, variables, opt_state, jax.random.PRNGKey(1))
      times = []
      for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fit_c(variables, opt_state, jax.random.PRNGKey(1)))
        times.append(time.perf_counter() - t0)
      med = statistics.median(times)
      row[tag] = {"conv": conv_lib.resolve_impl() if impl is None else impl, "labels": m,
                  "seconds_per_epoch": med, "all_seconds": times, "compile_seconds": compile_s,
                  "samples_per_second": m / med}
    rows.append(row)
  torch = _torch_reference("train-throughput", f"--repeats={FLAGS.repeats}")
  if torch:
    for row, t in zip(rows, torch["results"]):
      row["torch"] = t
  print(f"\ntrain-throughput: one epoch over {n} labels, batch 64, SGD; samples/s (median of "
        f"{FLAGS.repeats}); backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print(f"| model  | jaxal ({conv_lib.resolve_impl()}) | XLA conv | jaxal / XLA conv | PyTorch | "
        f"jaxal / PyTorch |")
  print("|--------|----------------|----------|------------------|---------|-----------------|")
  for r in rows:
    d, xla = r["default"]["samples_per_second"], r["xla_conv"]["samples_per_second"]
    d256 = r["default_256"]["samples_per_second"]
    t = r.get("torch", {}).get("samples_per_second")
    print(f"| {r['model']:6} | {d:14.0f} | {xla:8.0f} | {d256 / xla:15.2f}x | "
          f"{t if t else float('nan'):7.0f} | {(d / t if t else float('nan')):14.2f}x |")
  return {"workload": "train-throughput", "labels": n, "batch_size": 64, "repeats": FLAGS.repeats,
          "env": _env(), "results": rows, "torch": torch}


# ----------------------------------------------------------------------------- score-throughput

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
          "data": FLAGS.data_dir or "random", "env": _env(), "results": rows}


# ------------------------------------------------------------------------------------- kmeans

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
          "max_iter": FLAGS.kmeans_max_iter, "tol": FLAGS.kmeans_tol, "env": _env(),
          "jaxal": {"runs": ours, "compile_seconds": compile_s}, "sklearn": {"runs": theirs},
          "ratio_sklearn_over_jaxal": ratio, "inertia_ratio_jaxal_over_sklearn": inertia}


# --------------------------------------------------------------------------------- pool-scale

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
    rss_before = _peak_rss_mb()
    x = streaming.NpyFile(path)   # plain reads: no page of the pool stays mapped
    # A streamed block of `chunk` rows is scored in inner chunks of 1024 (`lax.map`), so memory is
    # set by the inner chunk and the per-call overhead is paid once per block. The in-memory
    # baseline uses the same blocks and keys, so both select the same items.
    def block_scores(v, xb, i):
      return scoring.score_pool(model, v, xb, jax.random.fold_in(key, i), "mc_dropout",
                                scoring.bald, s, 1024)
    if mode == "stream":
      fn = jax.jit(lambda xb, i: block_scores(variables, xb, i))
      compiled, compile_s = _compile(fn, jnp.zeros((chunk, dim)), 0)
      streaming.stream_top_k(compiled, np.zeros((chunk, dim), np.float32), k, chunk=chunk)  # warm
      t0 = time.perf_counter()
      idx, _ = streaming.stream_top_k(compiled, x, k, chunk=chunk)
    else:
      fn = jax.jit(lambda v, xs: strategies.top_k(training.apply_in_chunks(
          lambda xb, i: block_scores(v, xb, i), xs, chunk, with_index=True), jnp.ones(n, bool), k))
      compiled, compile_s = _compile(fn, variables, jax.ShapeDtypeStruct((n, dim), jnp.float32))
      t0 = time.perf_counter()
      xd = jnp.asarray(x[0:n])             # the whole pool read and placed on the device
      idx = np.asarray(compiled(variables, xd))
    seconds = time.perf_counter() - t0
  return {"pool_size": n, "mode": mode, "feature_dim": dim, "mc_samples": s, "chunk": chunk,
          "seconds": seconds, "compile_seconds": compile_s, "write_seconds": write_s,
          "peak_rss_mb": _peak_rss_mb(), "rss_before_pool_mb": rss_before,
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
          cmd = [sys.executable, "-m", "experiments.benchmark", "pool-scale", f"--pool_size={n}",
                 f"--pool_mode={m}", f"--feature_dim={FLAGS.feature_dim}",
                 f"--mc_samples={FLAGS.mc_samples}", f"--stream_chunk={FLAGS.stream_chunk}",
                 f"--out={out}"]
          subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
          with open(out) as f:
            rows.extend(json.load(f)["results"])
        print(f"  {n} items, {m}: {rows[-1]['seconds']:.1f}s, peak {rows[-1]['peak_rss_mb']:.0f} MB",
              flush=True)
  print(f"\npool-scale: BALD (S={FLAGS.mc_samples}, MLP 256, dropout before the classifier) + top-10 over N x "
        f"{FLAGS.feature_dim} features; backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
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
  return {"workload": "pool-scale", "env": _env(), "results": rows}


# ----------------------------------------------------------------------------- strategy-memory

def strategy_memory() -> dict:
  """Peak memory of BADGE and BatchBALD selection over a --pool_size pool: the temporary buffers of
  the compiled selection (XLA's memory analysis) against the arrays a direct implementation forms
  (BADGE: the N x (D*C) gradient embeddings; BatchBALD: the [N, M, S] joint probabilities of every
  candidate with the M configurations), and the measured selection time."""
  from jaxal import batch_strategies as bs
  from jaxal import diversity as dv
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
      ("badge", 100, jax.jit(lambda key, p, f, mk: dv.badge_select(key, p, f, mk, 100)),
       (key, probs, feats, cand), n * d * c * 4),
      ("batchbald", 10, jax.jit(lambda key, x, mk: bs.batchbald_select(key, x, mk, 10, m)),
       (key, samples, cand), n * m * s * 4)):
    compiled, compile_s = _compile(fn, *args)
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
  return {"workload": "strategy-memory", "env": _env(), "results": rows,
          "peak_rss_mb": _peak_rss_mb()}


WORKLOADS = {"fmnist-bald": fmnist_bald, "train-throughput": train_throughput,
             "score-throughput": score_throughput, "seeds": seeds_workload,
             "kmeans": kmeans_workload, "pool-scale": pool_scale,
             "strategy-memory": strategy_memory}


def main(argv):
  if len(argv) != 2 or argv[1] not in WORKLOADS:
    raise SystemExit(f"error: name one workload; accepted: {', '.join(WORKLOADS)}.")
  workload = argv[1]
  out = WORKLOADS[workload]()
  out["command"] = " ".join(sys.argv)
  path = FLAGS.out or f"benchmark-{workload}.json"
  reporting.write_json_atomic(path, out)
  print(f"written to {path}")


if __name__ == "__main__":
  app.run(main)
