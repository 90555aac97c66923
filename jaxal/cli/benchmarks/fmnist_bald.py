"""fmnist-bald: the time of a whole active-learning run on Fashion-MNIST.

LeNet-5 (dropout 0.5), 100 balanced initial labels, 10 per round, re-initialised and trained 50
epochs each round (batch 64, SGD lr 0.01, momentum 0.9), BALD with 20 MC-dropout samples over the
whole pool, test accuracy every round, --rounds rounds then a final training. One run per seed
(--repeats seeds). jaxal three ways: the production path (`jaxal.run`: one compiled program per
round), the whole run as one `lax.scan` program (`jaxal.run_scanned`), and the round split into
separately compiled phases (train / evaluate / score / select+tell) for the time breakdown.
Compilation is timed on its own (ahead of time).

Baseline: baal 2.x running the same protocol in PyTorch (experiments/torch_reference.py), in a
subprocess with --torch_python, or read from --torch_json (an earlier output of that script)."""
from __future__ import annotations

import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common
from jaxal import acquisition, annotation, driver
from jaxal.selection.primitives import top_k

FLAGS = flags.FLAGS


def _scanned(p: common.Problem, seeds, rounds: int) -> dict:
  states = common.initial_states(p, seeds)
  fn, compile_s = common.compile_aot(driver.make_scanned_fn(p.round_fn), states, p.pool, p.test)
  t0 = time.perf_counter()
  assert rounds == p.round_fn.budget.rounds
  records = driver.run_scanned(p.round_fn, p.pool, p.test, list(seeds), common.splits(p, seeds),
                               fn=fn, states=states)
  return {"compile_seconds": compile_s, "wall_seconds": time.perf_counter() - t0,
          "final_accuracy": [rec["rounds"][-1]["test_accuracy"] for rec in records],
          "selected": [[r["selected"] for r in rec["rounds"]] for rec in records]}


def _phased(p: common.Problem, seed: int, rounds: int) -> dict:
  """One seed, the round split into separately compiled phases, each timed (device-synchronised)."""
  round_fn, model = p.round_fn, p.model
  unc, chunk = round_fn.uncertainty, round_fn.train_config.eval_batch_size
  # Pool and test arrays are arguments (closing over them would embed them in the programs).
  train = jax.jit(lambda st, pool: round_fn.train(st, pool)[:2])
  evaluate = jax.jit(lambda st, test: round_fn.evaluate(st, test.x, test.y))
  score = jax.jit(lambda st, pool: acquisition.pool_scores(st, model, pool.x,
                                                           round_fn.strategy.score, unc, chunk))

  def select_tell(st, scores, pool):
    idx = top_k(scores, st.selectable & ~st.labeled, round_fn.budget.query_size)
    return annotation.tell(st, idx, pool.y[idx]), idx
  select_tell = jax.jit(select_tell)

  state = jax.tree.map(lambda a: a[0], common.initial_states(p, [seed]))
  compile_s = {}
  train, compile_s["train"] = common.compile_aot(train, state, p.pool)
  evaluate, compile_s["evaluate"] = common.compile_aot(evaluate, state, p.test)
  score, compile_s["score"] = common.compile_aot(score, state, p.pool)
  dummy = jnp.zeros(p.pool.y.shape, jnp.float32)
  select_tell, compile_s["select"] = common.compile_aot(select_tell, state, dummy, p.pool)
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
  if FLAGS.train_limit and (FLAGS.torch_json or FLAGS.torch_python):
    raise SystemExit("error: --train_limit runs a reduced pool; the PyTorch baseline runs the whole "
                     "protocol, so the two would not compare (drop --train_limit).")
  rounds, seeds = FLAGS.rounds, list(range(FLAGS.repeats))
  p = common.fmnist_problem(rounds)
  runs, fns = [], None
  for s in seeds:
    r = common.fused(p, [s], rounds, fns=fns)
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
         "train_limit": FLAGS.train_limit,
         "mc_samples": FLAGS.mc_samples, "env": common.env(),
         "jaxal": {"runs": runs, "wall_seconds_median": statistics.median(
                       r["wall_seconds"] for r in runs),
                   "round_seconds_median": statistics.median(per_round),
                   "compile_seconds": runs[0]["compile_seconds"],
                   "final_accuracy_mean_se": common.mean_se(jax_acc),
                   "phased": phased, "phased_selects_as_fused": same_as_fused,
                   "scanned": scanned, "peak_rss_mb": common.peak_rss_mb()}}
  if FLAGS.torch_json:
    with open(FLAGS.torch_json) as f:
      torch = json.load(f)
  else:
    torch = common.torch_reference("fmnist-bald", f"--data_dir={common.fmnist_dir()}",
                                   f"--rounds={rounds}", f"--seeds={len(seeds)}",
                                   f"--epochs={FLAGS.epochs}", f"--mc_samples={FLAGS.mc_samples}",
                                   f"--init={FLAGS.torch_init}")
  if torch is not None:
    t_acc = [r["rounds"][-1]["test_accuracy"] for r in torch["runs"]]
    t_wall = statistics.median(r["wall_seconds"] for r in torch["runs"])
    t_round = statistics.median(statistics.median(x["seconds"] for x in r["rounds"][:rounds])
                                for r in torch["runs"])
    out["baal"] = {**torch, "wall_seconds_median": t_wall, "round_seconds_median": t_round,
                   "final_accuracy_mean_se": common.mean_se(t_acc),
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
  row("  score+select s", ph["score"] + ph["select"],
      b and b["phase_seconds_median"]["score_select"])
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
