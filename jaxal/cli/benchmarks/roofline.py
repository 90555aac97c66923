"""A roofline for the phases of an active-learning round: how many floating-point operations and
bytes each phase moves, how fast it ran, and how close that is to what the machine can do.

The machine's limits are measured in the same process, right before they are used: the matmul
peak (`measure_peak`, a large float32 matrix product on every core XLA uses) and the memory
bandwidth (`measure_bandwidth`, a read-and-write pass and a read-only reduction over arrays much
larger than the caches; the faster of the two). A phase's work is counted by XLA's cost analysis
of its compiled unit (one training step, one scoring chunk, one evaluation chunk, one selection),
times the number of units the phase ran: XLA counts a loop's body once, whatever its trip count,
so the looped programs cannot be costed whole.

`classify` says which roof bounds a phase (compute when its arithmetic intensity, flops per byte,
is above the machine balance, peak / bandwidth; memory otherwise) and how much of that roof it
reached; a phase under 20% of its roof is "neither": the kernels themselves are inefficient (small
or skinny matmuls, many small ops, loop steps), not the hardware's limits."""
from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np


def best_seconds(fn, *args, repeats: int = 5) -> float:
  """The fastest of `repeats` runs of `fn(*args)` after one warm-up run (compilation)."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return min(times)


def measure_peak(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """GFLOP/s of an n x n x n matrix product (2 n^3 flops), best of `repeats`."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  fn = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  return 2.0 * n ** 3 / best_seconds(fn, a, b, repeats=repeats) / 1e9


def measure_bandwidth(mbytes: int = 256, repeats: int = 5) -> dict:
  """GB/s of a scale-and-add over a float32 array of `mbytes` (read once, written once) and of a
  sum over it (read once); "best" is the larger."""
  x = jnp.arange(mbytes * 2 ** 20 // 4, dtype=jnp.float32)
  nbytes = x.size * 4
  read = nbytes / best_seconds(jax.jit(jnp.sum), x, repeats=repeats) / 1e9
  # The output reuses the input's buffer (donated), so no fresh pages are faulted in per pass.
  scale = jax.jit(lambda v: v * 0.5 + 0.25, donate_argnums=0)
  x = jax.block_until_ready(scale(x))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    x = jax.block_until_ready(scale(x))
    times.append(time.perf_counter() - t0)
  triad = nbytes * 2 / min(times) / 1e9
  return {"read_write_gbs": triad, "read_gbs": read, "best": max(triad, read)}


def cost(fn, *args) -> tuple[float, float]:
  """(flops, bytes accessed) of `jax.jit(fn)(*args)` by XLA's cost analysis of the compiled
  program (loop bodies counted once). `fn` is traced anew (through a fresh wrapper, so no cached
  trace is reused: settings read at trace time, such as `JAXAL_CONV_IMPL`, apply)."""
  analysis = jax.jit(lambda *a: fn(*a)).lower(*args).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):     # older JAX: one dict per computation
    analysis = analysis[0]
  return float(analysis.get("flops", 0.0)), float(analysis.get("bytes accessed", 0.0))


def classify(flops: float, nbytes: float, seconds: float, peak_gflops: float,
             bandwidth_gbs: float) -> dict:
  """The roofline position of a phase that did `flops` and moved `nbytes` in `seconds`."""
  gflops, gbs = flops / seconds / 1e9, nbytes / seconds / 1e9
  intensity = flops / nbytes if nbytes else math.inf
  balance = peak_gflops / bandwidth_gbs
  roof = min(peak_gflops, bandwidth_gbs * intensity)          # attainable GFLOP/s
  bound = "compute" if intensity >= balance else "memory"
  share = gflops / roof if roof else 0.0
  if share < 0.2:
    bound = "neither"
  return {"seconds": seconds, "gflop": flops / 1e9, "gbytes": nbytes / 1e9,
          "intensity": intensity, "gflops": gflops, "gbs": gbs,
          "share_of_peak": gflops / peak_gflops, "share_of_bandwidth": gbs / bandwidth_gbs,
          "share_of_roof": share, "bound": bound}


ADVICE = {
    "compute": "fewer or cheaper flops: lower precision (bf16 matmuls), less recomputation",
    "memory": "fewer bytes: fuse producers into consumers, narrower types (uint8 pool, bf16)",
    "neither": "better-shaped kernels: wider matmuls than the skinny ones, fewer small ops and "
               "loop steps, larger batches or chunks",
}


def fmnist_phase_units(p, state, fns: dict, rounds: int, initial: int, query: int,
                       conv_impl: str | None = None) -> dict:
  """{phase: (flops, bytes)} for the whole of `rounds` rounds of the fmnist-bald problem `p`
  (jaxal.cli.benchmarks.common.Problem) from the state `state` (one seed). `fns`: the phases'
  functions (`fmnist_bald.phase_fns`); evaluate, score and select are costed on one chunk (one
  call for select), train by one optimiser step. With `conv_impl`, the units are traced with that
  convolution lowering (`JAXAL_CONV_IMPL`), e.g. "xla" to count the model's own multiply-adds
  rather than those the faster lowerings execute."""
  from jaxal.models import conv  # pylint: disable=import-outside-toplevel
  saved = os.environ.get(conv.ENV_VAR)
  if conv_impl:
    os.environ[conv.ENV_VAR] = conv_impl
  try:
    return _fmnist_units(p, state, fns, rounds, initial, query)
  finally:
    if saved is None:
      os.environ.pop(conv.ENV_VAR, None)
    else:
      os.environ[conv.ENV_VAR] = saved


def _fmnist_units(p, state, fns: dict, rounds: int, initial: int, query: int) -> dict:
  from jaxal import training  # pylint: disable=import-outside-toplevel
  from jaxal.state import LabeledArrays  # pylint: disable=import-outside-toplevel
  tc = p.round_fn.train_config
  chunk, batch = tc.eval_batch_size, tc.batch_size
  n_pool, n_test = p.pool.x.shape[0], p.test.x.shape[0]
  step = lambda v, o, x, y, w, k: training.train_step(p.model, p.tx, v, o, x, y, w, k, 0.0)
  step_cost = cost(step, state.variables, state.opt_state, p.pool.x[:batch], p.pool.y[:batch],
                   jnp.ones((batch,), jnp.float32), jax.random.key(0))
  steps = sum(tc.epochs * math.ceil((initial + query * r) / batch) for r in range(rounds))
  pool_chunk = LabeledArrays(p.pool.x[:chunk], p.pool.y[:chunk])
  score_cost = cost(fns["score"], state, pool_chunk)
  eval_cost = cost(fns["evaluate"], state, LabeledArrays(p.test.x[:chunk], p.test.y[:chunk]))
  select_cost = cost(fns["select"], state, jnp.zeros((n_pool,), jnp.float32), p.pool)
  scale = lambda c, k: (c[0] * k, c[1] * k)
  return {"train": scale(step_cost, steps),
          "score": scale(score_cost, rounds * math.ceil(n_pool / chunk)),
          "evaluate": scale(eval_cost, rounds * math.ceil(n_test / chunk)),
          "select": scale(select_cost, rounds)}


def table(units: dict, phase_seconds: dict, peak_gflops: float, bandwidth_gbs: float,
          model_units: dict | None = None) -> list:
  """Rows of the roofline table: one per phase, the seconds summed over the measured rounds. With
  `model_units` (the same phases counted with the direct convolution), each row also has the
  model's own GFLOP and the rate at which they were done ("model_gflops")."""
  rows = []
  for name, (flops, nbytes) in units.items():
    seconds = float(np.sum(phase_seconds[name]))
    row = {"phase": name, **classify(flops, nbytes, seconds, peak_gflops, bandwidth_gbs)}
    if model_units is not None:
      row["model_gflop"] = model_units[name][0] / 1e9
      row["model_gflops"] = model_units[name][0] / seconds / 1e9
    rows.append(row)
  return rows


def print_table(rows: list, peak_gflops: float, bandwidth: dict) -> None:
  print(f"\nroofline: matmul peak {peak_gflops:.1f} GFLOP/s (float32, measured), memory "
        f"{bandwidth['best']:.1f} GB/s (read+write {bandwidth['read_write_gbs']:.1f}, read "
        f"{bandwidth['read_gbs']:.1f}), balance {peak_gflops / bandwidth['best']:.1f} flop/byte")
  print("| phase | s | GFLOP executed (model's) | GB | flop/byte | GFLOP/s executed (model's) | "
        "% peak | GB/s | % bandwidth | bound | % of its roof |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    model = (f" ({r['model_gflop']:.1f})", f" ({r['model_gflops']:.1f})") if "model_gflop" in r \
        else ("", "")
    print(f"| {r['phase']} | {r['seconds']:.2f} | {r['gflop']:.1f}{model[0]} | {r['gbytes']:.2f} | "
          f"{r['intensity']:.1f} | {r['gflops']:.1f}{model[1]} | {100 * r['share_of_peak']:.0f} | "
          f"{r['gbs']:.1f} | {100 * r['share_of_bandwidth']:.0f} | {r['bound']} | "
          f"{100 * r['share_of_roof']:.0f} |")
  for r in rows:
    print(f"  {r['phase']}: {r['bound']}-bound; to move it: {ADVICE[r['bound']]}")

