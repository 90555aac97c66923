"""fmnist-bald: the time of a whole active-learning run on Fashion-MNIST.

LeNet-5 (dropout 0.5), 100 balanced initial labels, 10 per round, re-initialised and trained 50
epochs each round (batch 64, SGD lr 0.01, momentum 0.9), BALD with 20 MC-dropout samples over the
whole pool, test accuracy every round, --rounds rounds then a final training. One run per seed
(--repeats seeds). jaxal four ways: the production path (`jaxal.run`: one compiled program per
round), the whole run as one `lax.scan` program (`jaxal.run_scanned`), the round split into
separately compiled phases (train / evaluate / score / select+tell) for the time breakdown and the
roofline (`roofline.py`), and, with --whole_command, the command line a user types
(`python -m jaxal.cli.run` with the protocol's flags) timed end to end in its own process with an
empty and then a warm compilation cache. Compilation is timed on its own (ahead of time).

Baselines (experiments/torch_reference.py, in a subprocess with --torch_python, or read from
--torch_json): `plain`, a plain PyTorch loop with the same shared-trunk scoring (the strongest a
PyTorch user would write), and `baal`, baal 2.x's own loop. Each is one command over all seeds,
timed whole (start-up and data loading included) and per phase."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common, roofline
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


def phase_fns(p: common.Problem) -> dict:
  """The round's phases as functions of (state, arrays): train(st, pool), evaluate(st, test),
  score(st, pool) and select(st, scores, pool) (top-K and tell). The pool and test arrays are
  arguments (closing over them would embed them in the programs)."""
  round_fn, model = p.round_fn, p.model
  unc, chunk = round_fn.uncertainty, round_fn.train_config.eval_batch_size

  def select(st, scores, pool):
    idx = top_k(scores, st.selectable & ~st.labeled, round_fn.budget.query_size)
    return annotation.tell(st, idx, pool.y[idx]), idx
  return {"train": lambda st, pool: round_fn.train(st, pool)[:2],
          "evaluate": lambda st, test: round_fn.evaluate(st, test.x, test.y),
          "score": lambda st, pool: acquisition.pool_scores(st, model, pool.x,
                                                            round_fn.strategy.score, unc, chunk),
          "select": select}


def _phased(p: common.Problem, seed: int, rounds: int) -> dict:
  """One seed, the round split into separately compiled phases, each timed (device-synchronised)."""
  fns = phase_fns(p)
  train, evaluate = jax.jit(fns["train"]), jax.jit(fns["evaluate"])
  score, select_tell = jax.jit(fns["score"]), jax.jit(fns["select"])

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


BASELINES = {"plain": "fmnist-bald-plain", "baal": "fmnist-bald"}


def protocol_command(data_dir: str, rounds: int, seeds: int, workdir: str, cache: str, *,
                     epochs: int = 50, mc_samples: int = 20, chunk: int = 1024,
                     train_limit: int = 0) -> list[str]:
  """The jaxal command line that runs the protocol of `common.fmnist_problem`."""
  cmd = [sys.executable, "-m", "jaxal.cli.run", "--dataset=idx", f"--data_dir={data_dir}",
         "--model=lenet5", "--strategies=bald", "--uncertainty=mc_dropout",
         f"--mc_samples={mc_samples}", f"--rounds={rounds}", f"--seeds={seeds}",
         "--initial_size=100", "--query_size=10", "--val_size=0", f"--epochs={epochs}",
         "--batch_size=64", "--optimizer=sgd", "--learning_rate=0.01", "--momentum=0.9",
         "--reinit", f"--eval_batch_size={chunk}", "--checkpoint_every=0",
         f"--workdir={workdir}", "--overwrite", f"--compilation_cache={cache}", "--progress=rounds"]
  if train_limit:
    cmd += [f"--train_limit={train_limit}", f"--test_limit={max(train_limit // 10, 10)}"]
  return cmd


def timed_command(cmd: list[str], workdir: str, what: str = "") -> dict:
  """Runs a `jaxal.cli.run` command line (writing to `workdir`) in its own process and times it:
  wall seconds, round 0's seconds and when round 0 started after the command's start (start-up,
  data, settings), and from its results.json the final accuracies and selections."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")
         and k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}   # --compilation_cache decides
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env)
  lines, first_line = [], None
  for line in proc.stdout:     # the time the line of round 0 is printed (after that round)
    lines.append(line)
    if first_line is None and "] round" in line and " 0/" in line:
      first_line = time.perf_counter() - t0
  wall = time.perf_counter() - t0
  if proc.wait():
    raise SystemExit(f"error: the jaxal command failed{what}:\n" + "".join(lines)[-3000:])
  with open(os.path.join(workdir, "results.json")) as f:
    runs = json.load(f)["runs"]
  first = runs[0]["rounds"][0]["seconds"]
  return {"seconds": wall, "first_round_seconds": first,
          "first_round_starts_at": None if first_line is None else first_line - first,
          "final_accuracy": [r["rounds"][-1]["test_accuracy"] for r in runs],
          "selected": [[x["selected"] for x in r["rounds"]] for r in runs]}


def _cli_command(rounds: int, seeds: int, workdir: str, cache: str) -> list[str]:
  return protocol_command(common.fmnist_dir(), rounds, seeds, workdir, cache, epochs=FLAGS.epochs,
                          mc_samples=FLAGS.mc_samples, chunk=FLAGS.chunk,
                          train_limit=FLAGS.train_limit)


def _whole_command(rounds: int, seeds: int) -> dict:
  """The jaxal command end to end, in its own process: with an empty compilation cache (cold) and
  again with the cache the first run filled (warm)."""
  out = {}
  with tempfile.TemporaryDirectory() as tmp:
    cache = os.path.join(tmp, "xla")
    for name in ("cold", "warm"):
      work = os.path.join(tmp, name)
      out[name] = timed_command(_cli_command(rounds, seeds, work, cache), work,
                                f" ({name} cache)")
      print(f"jaxal whole command, {name} compilation cache: {out[name]['seconds']:.1f}s "
            f"({seeds} seeds)", flush=True)
    out["command"] = " ".join(_cli_command(rounds, seeds, "<workdir>", "<cache>"))
  return out


def _baseline(name: str, torch: dict, rounds: int) -> dict:
  acc = [r["rounds"][-1]["test_accuracy"] for r in torch["runs"]]
  med = lambda k: statistics.median(statistics.median(x[k] for x in r["rounds"][:rounds])
                                    for r in torch["runs"])
  return {**torch, "name": name, "wall_seconds_median": statistics.median(
              r["wall_seconds"] for r in torch["runs"]),
          "round_seconds_median": med("seconds"),
          "final_accuracy_mean_se": common.mean_se(acc),
          "phase_seconds_median": {k: med(k + "_seconds")
                                   for k in ("train", "score_select", "evaluate")}}


def _check_baselines() -> list:
  """The saved baselines of --torch_json, read and checked before anything runs (a wrong file is
  one line naming the flag, not a failure after the jaxal runs); without it, --baselines checked."""
  saved = []
  for path in [p for p in FLAGS.torch_json.split(",") if p]:
    try:
      with open(path) as f:
        torch = json.load(f)
    except (OSError, ValueError) as e:
      raise SystemExit(f"error: --torch_json={path!r} cannot be read as JSON: {e}") from None
    workload = torch.get("workload") if isinstance(torch, dict) else None
    name = {v: k for k, v in BASELINES.items()}.get(workload)
    if name is None or not isinstance(torch.get("runs"), list):
      raise SystemExit(f"error: --torch_json={path!r} holds workload {workload!r}; accepted: "
                       f"the output of torch_reference.py {' or '.join(BASELINES.values())}.")
    saved.append((name, torch))
  bad = [b for b in FLAGS.baselines.split(",") if b and b not in BASELINES]
  if bad and not saved:
    raise SystemExit(f"error: --baselines={FLAGS.baselines!r}; accepted: "
                     f"{', '.join(BASELINES)} (comma-separated).")
  return saved


def _load_baselines(rounds: int, seeds: list, saved: list) -> dict:
  if saved:
    return {name: _baseline(name, torch, rounds) for name, torch in saved}
  out = {}
  for name in [b for b in FLAGS.baselines.split(",") if b]:
    t0 = time.perf_counter()
    torch = common.torch_reference(BASELINES[name], f"--data_dir={common.fmnist_dir()}",
                                   f"--rounds={rounds}", f"--seeds={len(seeds)}",
                                   f"--epochs={FLAGS.epochs}", f"--mc_samples={FLAGS.mc_samples}",
                                   f"--init={FLAGS.torch_init}")
    if torch is None:
      break
    torch["command_seconds"] = time.perf_counter() - t0
    out[name] = _baseline(name, torch, rounds)
    print(f"baseline {name}: whole command {torch['command_seconds']:.1f}s", flush=True)
  return out


def _roofline(p: common.Problem, phased: dict, rounds: int) -> dict:
  peak = roofline.measure_peak()
  bandwidth = roofline.measure_bandwidth()
  state = jax.tree.map(lambda a: a[0], common.initial_states(p, [0]))
  fns = phase_fns(p)
  units = roofline.fmnist_phase_units(p, state, fns, rounds, initial=100, query=10)
  model_units = roofline.fmnist_phase_units(p, state, fns, rounds, initial=100, query=10,
                                            conv_impl="xla")
  rows = roofline.table(units, phased["phase_seconds"], peak, bandwidth["best"], model_units)
  roofline.print_table(rows, peak, bandwidth)
  return {"peak_gflops": peak, "bandwidth": bandwidth, "phases": rows}


def fmnist_bald() -> dict:
  if FLAGS.train_limit and (FLAGS.torch_json or FLAGS.torch_python):
    raise SystemExit("error: --train_limit runs a reduced pool; the PyTorch baseline runs the whole "
                     "protocol, so the two would not compare (drop --train_limit).")
  saved = _check_baselines()
  rounds, seeds = FLAGS.rounds, list(range(FLAGS.repeats))
  t_start = time.perf_counter()
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
                   "scanned": scanned, "peak_rss_mb": common.peak_rss_mb(),
                   "in_process_seconds": time.perf_counter() - t_start}}
  if FLAGS.roofline:
    out["roofline"] = _roofline(p, phased, rounds)
  if FLAGS.whole_command:
    whole = _whole_command(rounds, len(seeds))
    # The command records positions in the whole training set (the same as pool positions unless
    # --train_limit took a sample).
    index = p.train_index if p.train_index is not None else np.arange(p.y.shape[0])
    fused_sel = [[index[np.asarray(s, np.int64)].tolist() for s in r["selected"][0]] for r in runs]
    whole["selects_as_fused"] = all(whole[c]["selected"] == fused_sel for c in ("cold", "warm"))
    out["jaxal"]["whole_command"] = whole
  base = _load_baselines(rounds, seeds, saved)
  out["baselines"] = base

  j = out["jaxal"]
  ph = {k: statistics.median(v) for k, v in phased["phase_seconds"].items()}
  mine = {"whole command s (cold cache)": j.get("whole_command", {}).get("cold", {}).get("seconds"),
          "whole command s (warm cache)": j.get("whole_command", {}).get("warm", {}).get("seconds"),
          "run wall s (excl. compile)": j["wall_seconds_median"],
          "s per round (median)": j["round_seconds_median"],
          "  train s": ph["train"], "  score+select s": ph["score"] + ph["select"],
          "  evaluate s": ph["evaluate"]}

  def theirs(b):
    whole = b.get("command_seconds")
    return {"whole command s (cold cache)": whole, "whole command s (warm cache)": whole,
            "run wall s (excl. compile)": b["wall_seconds_median"],
            "s per round (median)": b["round_seconds_median"],
            "  train s": b["phase_seconds_median"]["train"],
            "  score+select s": b["phase_seconds_median"]["score_select"],
            "  evaluate s": b["phase_seconds_median"]["evaluate"]}
  cols = {name: theirs(b) for name, b in base.items()}
  out["ratios"] = {name: {k: (mine[k] / v if mine[k] and v else None) for k, v in c.items()}
                   for name, c in cols.items()}
  print(f"\nfmnist-bald: {rounds} rounds + final, {len(seeds)} seed(s), backend "
        f"{jax.default_backend()} ({os.cpu_count()} CPUs); whole commands run all "
        f"{len(seeds)} seeds, the other rows are per seed (median)")
  fmt = lambda v: f"{v:10.2f}" if v else f"{'-':>10}"
  head = "".join(f" {n:>10} | {'ratio':>7} |" for n in cols)
  print(f"| {'':30} | {'jaxal':>10} |{head}")
  print(f"|{'-' * 32}|{'-' * 12}|" + f"{'-' * 12}|{'-' * 9}|" * len(cols))
  for k, v in mine.items():
    line = f"| {k:30} | {fmt(v)} |"
    for name, c in cols.items():
      r = out["ratios"][name][k]
      line += f" {fmt(c[k])} | " + (f"{r:6.3f}x" if r else f"{'':7}") + " |"
    print(line)
  print(f"compile: {j['compile_seconds']:.1f}s (round + final programs); phases "
        + ", ".join(f"{k} {v:.1f}s" for k, v in phased["compile_seconds"].items()))
  if scanned:
    print(f"lax.scan over rounds: {scanned['wall_seconds']:.1f}s (compile "
          f"{scanned['compile_seconds']:.1f}s), same selections: "
          f"{scanned['selected'] == runs[0]['selected']}")
  m, se = j["final_accuracy_mean_se"]
  print(f"final accuracy jaxal {m:.4f} ± {se:.4f}" + "".join(
      f", {name} {b['final_accuracy_mean_se'][0]:.4f} ± {b['final_accuracy_mean_se'][1]:.4f}"
      for name, b in base.items()) + f" ({len(seeds)} seeds); phased path selects as fused: "
      f"{same_as_fused}")
  if "whole_command" in j:
    w = j["whole_command"]
    print(f"whole command: round 0 takes {w['cold']['first_round_seconds']:.1f}s cold, "
          f"{w['warm']['first_round_seconds']:.1f}s warm, and starts "
          f"{w['cold']['first_round_starts_at']:.1f}s / {w['warm']['first_round_starts_at']:.1f}s "
          f"after the command; selects as the in-process runs: {w['selects_as_fused']}")
  return out
