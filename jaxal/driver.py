"""Driving a round function over rounds and seeds: `run` (one compiled round per step, checkpoints
through `on_state`, progress through `on_round`, stopping rules) and `run_scanned` (every round of
every seed as one `lax.scan` program).

    records = jaxal.run(round_fn, pool, test, seeds=[0, 1, 2], splits=splits)

Both check their arguments against the round's budget before anything is compiled, and return one
record per seed in the format of results.json.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import threading
import time
import warnings
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import progress as progress_lib
from jaxal import stopping
from jaxal.data.splits import Splits
from jaxal.errors import ArgumentError
from jaxal.records import record_round
from jaxal.round import Round, over_seeds
from jaxal.state import ALState, LabeledArrays


def make_round_fns(round_fn: Round, seed_batching: str = "auto", progress_hooks: bool = False):
  """(step, final): the jitted round and final training+evaluation over a leading seed axis; with
  `progress_hooks`, programs that report their phases to `jaxal.progress` (same values)."""
  if progress_hooks and not round_fn.progress_hooks:
    round_fn = dataclasses.replace(round_fn, progress_hooks=True)
  donate = (0,) if jax.default_backend() != "cpu" else ()
  step = jax.jit(over_seeds(round_fn, seed_batching), donate_argnums=donate)
  final = jax.jit(over_seeds(round_fn.train_and_evaluate, seed_batching))
  return step, final


# -------------------------------------------------------------------------------------------------
# checks before compiling

def _check_arrays(arrays: Any, name: str, num_classes: int, shape: tuple | None = None,
                  unknown_ok: bool = False) -> None:
  if not isinstance(arrays, LabeledArrays):
    raise ArgumentError(f"{{{name}}} must be a jaxal.LabeledArrays(x, y), got "
                        f"{type(arrays).__name__}.")
  x, y = arrays.x, arrays.y
  if x.ndim < 2 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ArgumentError(f"{{{name}}}.x must be float images [N, H, W, C] (normalised), got "
                        f"{x.dtype} {tuple(x.shape)}.")
  if y.shape != x.shape[:1] or not jnp.issubdtype(y.dtype, jnp.integer):
    raise ArgumentError(f"{{{name}}}.y must be int labels [{x.shape[0]}], got {y.dtype} "
                        f"{tuple(y.shape)}.")
  if shape is not None and tuple(x.shape[1:]) != shape:
    raise ArgumentError(f"{{{name}}}.x has images {tuple(x.shape[1:])}, the pool {shape}.")
  if y.size:
    low, high = int(jnp.min(y)), int(jnp.max(y))
    if low < (-1 if unknown_ok else 0) or high >= num_classes:
      unknown = " or -1 where a person has not labeled an item yet" if unknown_ok else ""
      raise ArgumentError(f"{{{name}}}.y holds labels {low}..{high}; the round has "
                          f"{{num_classes}}={num_classes} (labels 0..{num_classes - 1}"
                          f"{unknown}).")


def check_run(round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None,
              seeds: Sequence[int], splits: Sequence[Splits], person: bool = False) -> None:
  """Everything `run` can check before compiling: arrays, seeds, splits against the budget.
  With `person` (a person answers), `pool.y` may hold -1 for items nobody has labeled yet.
  Raises ArgumentError naming the parameter."""
  if not isinstance(round_fn, Round):
    raise ArgumentError(f"{{round_fn}} must come from jaxal.make_round, got "
                        f"{type(round_fn).__name__}.")
  c = round_fn.num_classes
  _check_arrays(pool, "pool", c, unknown_ok=person)
  if test is not None:
    _check_arrays(test, "test", c, tuple(pool.x.shape[1:]))
  seeds = list(seeds)
  if not seeds or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) for s in seeds):
    raise ArgumentError(f"{{seeds}} must be a non-empty list of ints, got {seeds!r}.")
  if len(set(int(s) for s in seeds)) != len(seeds):
    raise ArgumentError(f"{{seeds}} names a seed twice: {seeds}.")
  if len(splits) != len(seeds):
    raise ArgumentError(f"{{splits}} must hold one Splits per seed: {len(splits)} splits for "
                        f"{len(seeds)} seeds.")
  n = pool.x.shape[0]
  budget = round_fn.budget
  for i, sp in enumerate(splits):
    where = f"{{splits}}[{i}]"
    if not isinstance(sp, Splits):
      raise ArgumentError(f"{where} must be a jaxal.data.Splits (make_splits), got "
                          f"{type(sp).__name__}.")
    sel = np.asarray(sp.selectable)
    if sel.shape != (n,) or sel.dtype != bool:
      raise ArgumentError(f"{where}.selectable must be bool [{n}] over the pool, got {sel.dtype} "
                          f"{sel.shape}.")
    for part in ("initial", "val"):
      idx = np.asarray(getattr(sp, part))
      if idx.size and (idx.min() < 0 or idx.max() >= n or len(np.unique(idx)) != idx.size):
        raise ArgumentError(f"{where}.{part} must hold distinct pool indices in [0, {n}).")
    if sel[np.asarray(sp.val, int)].any():
      raise ArgumentError(f"{where}: validation items are selectable; the validation set must "
                          "never be queried (selectable False there).")
    if len(sp.initial) != budget.initial_size:
      raise ArgumentError(f"{where}.initial has {len(sp.initial)} items, the budget "
                          f"{{budget.initial_size}}={budget.initial_size}.")
    if not sel[np.asarray(sp.initial, int)].all():
      raise ArgumentError(f"{where}.initial holds items that are not selectable.")
    selectable = int(sel.sum())
    if not round_fn.annotates_clusters and budget.labels > selectable:
      raise ArgumentError(
          f"{{budget.initial_size}} + {{budget.rounds}} * {{budget.query_size}} = "
          f"{budget.initial_size} + {budget.rounds} * {budget.query_size} = {budget.labels} "
          f"exceeds the selectable pool ({selectable} items, the validation set excluded); "
          "lower {budget.rounds} or {budget.query_size}.")
    if round_fn.annotates_clusters:
      clusters = round_fn.strategy.clusters(n - len(sp.val))
      if round_fn.strategy.clusters_per_round > clusters:
        raise ArgumentError(f"{{clusters_per_round}}={round_fn.strategy.clusters_per_round} "
                            f"exceeds the {clusters} clusters (selectable pool / "
                            "{cluster_size}).")
      if budget.initial_size + budget.query_size * budget.rounds > selectable and (
          round_fn.strategy.images is not None):
        raise ArgumentError(f"{{budget.initial_size}} + {{budget.rounds}} * {{budget.query_size}}"
                            f" = {budget.labels} exceeds the selectable pool ({selectable}).")
    if round_fn.pool_subset:
      last = selectable - (budget.labels - budget.query_size)
      if round_fn.pool_subset > last:
        raise ArgumentError(f"{{pool_subset}}={round_fn.pool_subset} exceeds the unlabeled items "
                            f"left in the last round ({last}); lower it or set 0 to score the "
                            "whole pool.")
    if round_fn.stop_set > selectable:
      raise ArgumentError(f"{{stop_set}}={round_fn.stop_set} exceeds the selectable pool "
                          f"({selectable} items).")


# -------------------------------------------------------------------------------------------------
# compiling ahead

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"   # jax.monitoring's event
_compiles = threading.local()
_listening = []


def _compiles_here() -> int:
  """XLA compilations so far in this thread (a jax.monitoring listener counts them): a round whose
  call raised it compiled (a persistent-cache hit does not count)."""
  if not _listening:
    def count(event, seconds, **kwargs):
      del seconds, kwargs
      if event == _BACKEND_COMPILE:
        _compiles.n = getattr(_compiles, "n", 0) + 1
    _listening.append(count)
    jax.monitoring.register_event_duration_secs_listener(count)
  return getattr(_compiles, "n", 0)


def _spec(a):
  if not hasattr(a, "shape") or not hasattr(a, "dtype"):
    return a
  aval = getattr(a, "aval", None)   # an uncommitted array (the default device) has no sharding
  return jax.ShapeDtypeStruct(a.shape, a.dtype,
                              sharding=a.sharding if getattr(a, "_committed", False) else None,
                              weak_type=bool(getattr(aval, "weak_type", False)))


class _FinalAhead:
  """Compiles the final program (`final.lower(...).compile()`, for the shapes of the round's
  input) in a background thread while the first round runs; the jitted `final` then finds it
  compiled, so the last round does not stop to compile. `get()` waits for it and says whether it
  had to wait. A failure here only means `final` compiles when called."""

  def __init__(self, final, states, pool, test):
    self.future, self.pool = None, None
    if hasattr(final, "lower"):
      specs = jax.tree.map(_spec, (states, pool, test))
      self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxal-compile")
      self.future = self.pool.submit(lambda: final.lower(*specs).compile())

  def get(self) -> bool:
    if self.future is None:
      return False
    waited = not self.future.done()
    try:
      self.future.result()
    except Exception:  # pylint: disable=broad-except
      pass
    self.future = None
    self.close()
    return waited

  def close(self):
    if self.pool is not None:
      self.pool.shutdown(wait=True)
      self.pool = None


# -------------------------------------------------------------------------------------------------
# drivers

def run(round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None, seeds: Sequence[int],
        splits: Sequence[Splits], *, train_index: np.ndarray | None = None,
        on_round: Callable[[dict], None] | None = None, fns=None, seed_batching: str = "auto",
        states: ALState | None = None, records: Sequence[dict] | None = None,
        on_state: Callable[[int, ALState, list[dict]], None] | None = None,
        stop: stopping.StopRules | None = None,
        progress: progress_lib.Reporter | None = None, compile_ahead: bool = True,
        phases: bool | float = True) -> list[dict]:
  """Runs `round_fn.budget.rounds` acquisition rounds for all seeds in one program (see
  `over_seeds`), then a final training; optionally resumes from a checkpoint.

  Args:
    round_fn: from `jaxal.make_round`.
    pool, test: device arrays; `pool.y` is the simulated oracle's ground truth; `test` may be None
      (no test metrics).
    seeds, splits: one split per seed (validation and initial sets over the pool).
    train_index: maps pool positions to the dataset's original training order (for `selected`).
    on_round: called with a summary dict after every round (progress printing): "strategy",
      "round", "labels", "test_accuracy", "train_loss" (means over seeds), "seconds", "first",
      "compiled" (the round compiled its program), "warning" (the training-divergence warning,
      once per run, else None; without `on_round` it is issued with `warnings.warn`).
    fns: optional `(step, final)` from `make_round_fns`, to reuse compiled functions.
    seed_batching: "vmap", "map" or "auto" (see `over_seeds`).
    states: optional stacked state [S, ...] to start from (`round_fn.init_states`, or one restored
      from a checkpoint); default: freshly initialised.
    records: the per-seed records of the evaluations already done (as returned by this function);
      with s rounds recorded, the run resumes at round s and `states` must be the input of round s.
      Round keys are `fold_in(key, round)`, so a resumed run computes what an uninterrupted one
      would.
    on_state: called as `on_state(s, states, records)` after evaluation s - 1 is recorded, before
      `on_round` (so a progress line means the checkpoint is written).
    stop: stopping rules (`jaxal.stopping`), checked after every acquisition round; when a rule has
      fired for every seed the run trains once more (the final evaluation) and ends early, and each
      record gets "stopped": {"rule", "round"}. The rules on the stop set need `stop_set` > 0.
    progress: a `jaxal.progress.Reporter` showing each round's phases, loss and ETA while it runs
      (the programs then report their phases through host callbacks; same values).
    phases: with `progress`, the programs report the phases inside each round (train, evaluate,
      select) through host callbacks; False reports rounds only, and the programs, free of host
      callbacks, can be kept in JAX's persistent compilation cache. A number of seconds: rounds
      only (cacheable programs, a quick start) until a round takes at least that long, then the
      programs with the phase reports for the rest of the strategy (compiled then; same values).
    compile_ahead: compile the final program in a background thread during the first round
      (it is a different program from the round), so the last round does not stop to compile.
  Returns:
    one dict per seed: {"seed", "rounds": [{"round", "labels", "interactions", "test_accuracy",
    "per_class_accuracy", "val_accuracy", "train_loss", "selected", "seconds", ...}]}.
  """
  check_run(round_fn, pool, test, seeds, splits)
  rounds = round_fn.budget.rounds
  if states is None:
    states = round_fn.init_states(seeds, splits, pool)
  if records is None:
    records = [{"seed": int(s), "rounds": []} for s in seeds]
  else:
    records = [{**rec, "rounds": list(rec["rounds"])} for rec in records]
  done = {len(rec["rounds"]) for rec in records}
  if [rec["seed"] for rec in records] != [int(s) for s in seeds] or len(done) != 1:
    raise ArgumentError(f"{{records}} are for seeds {[rec['seed'] for rec in records]} with "
                        f"{sorted(done)} rounds; expected seeds {list(seeds)} with one count.")
  start = done.pop()
  if start <= rounds and not bool(jnp.all(states.round == start)):
    raise ArgumentError(f"resuming at round {start} needs {{states}} at round {start}, got "
                        f"{np.asarray(states.round).tolist()}.")
  if stop is not None and stop.needs_stop_set and not round_fn.stop_set:
    raise ArgumentError("{stop} rules on uncertainty or agreement need a stop set: make the round "
                        "with {stop_set} > 0.")
  tracker = stopping.StopTracker(stop, len(records)) if stop is not None and stop.active else None
  step, final = fns or make_round_fns(round_fn, seed_batching,
                                      progress_hooks=progress is not None and phases is True)
  rehook = None    # phases after a long round: the programs with the phase reports, made then
  if progress is not None and fns is None and not isinstance(phases, bool):
    rehook = (float(phases), lambda: make_round_fns(round_fn, seed_batching, progress_hooks=True))
  index_map = np.arange(pool.x.shape[0]) if train_index is None else np.asarray(train_index)
  # Resumed after a stop fired (the records say so) but before its final evaluation: do it now.
  stopped = bool(records) and all(rec.get("stopped") for rec in records)
  if stopped and tracker is not None:
    tracker.fired = [rec["stopped"] for rec in records]
  ahead = _FinalAhead(final, states, pool, test) if compile_ahead and start <= rounds else None
  watch = progress_lib.DivergenceWatch(num_classes=round_fn.num_classes)
  if records[0]["rounds"]:   # resumed: the first round's losses are in the records
    watch.update(0, [rec["rounds"][0]["train_loss"] for rec in records])
  if progress is not None:
    progress.start_strategy(round_fn.name, rounds, seeds=len(records), start=start)
  try:
    with progress_lib.active(progress) if progress is not None else contextlib.nullcontext():
      return _run_rounds(round_fn, pool, test, step, final, ahead, watch, progress, states,
                         records, start, stopped, tracker, index_map, on_state, on_round, rehook)
  finally:
    if ahead is not None:
      ahead.close()
    if progress is not None:
      progress.finish_strategy()


def _run_rounds(round_fn, pool, test, step, final, ahead, watch, progress, states, records, start,
                stopped, tracker, index_map, on_state, on_round, rehook=None):
  """`run`'s loop over rounds, from round `start`. `rehook`: (seconds, make) to switch to the
  programs `make()` returns once a round took at least `seconds`."""
  rounds = round_fn.budget.rounds
  for r in range(start, rounds + 1):
    is_final = not (r < rounds and not stopped)
    if progress is not None:   # the first round compiles, unless given compiled functions
      progress.start_round(r, final=is_final, compiling=r == start)
    before = _compiles_here()
    t0 = time.perf_counter()
    waited = ahead.get() if is_final and ahead is not None else False
    fn = final if is_final else step
    states, metrics = fn(states, pool, test)
    metrics = jax.device_get(metrics)
    if progress is not None:
      jax.effects_barrier()   # the round's phase callbacks have all run
    if r == start and ahead is not None and not is_final:
      ahead.get()   # the final program compiled during this (compiling) round
    seconds = time.perf_counter() - t0
    compiled = waited or _compiles_here() != before
    record_round(records, r, metrics, index_map, seconds)
    loss = np.asarray(metrics["train_loss"], np.float64)
    warning = watch.update(r, loss)
    if progress is not None:
      progress.end_round(seconds, compiled=compiled)
    if rehook is not None and seconds >= rehook[0]:   # (the final compiled ahead is replaced)
      (step, final), rehook, ahead = rehook[1](), None, None
    last = stopped or r == rounds
    if tracker is not None and not last:
      labels, spent = jax.device_get((jnp.sum(states.labeled, axis=-1), states.interactions))
      stopped = tracker.update(r, labels, spent, metrics.get("stop_uncertainty"),
                               metrics.get("stop_predictions"))
      if stopped:   # in the records before the checkpoint, so a resume goes straight to the final
        for rec, fired in zip(records, tracker.fired):
          rec["stopped"] = fired
    if last and tracker is not None and not stopped:
      for rec, fired in zip(records, tracker.fired):   # rules that fired for some seeds only
        if fired is not None:
          rec["stop_fired"] = fired
    if on_state is not None:
      on_state(r + 1, states, records)
    if on_round is not None:
      on_round({"strategy": round_fn.name, "round": r, "labels": int(metrics["labels"][0]),
                "test_accuracy": (float(np.mean(metrics["test_accuracy"]))
                                  if "test_accuracy" in metrics else None),
                "train_loss": float(np.mean(loss)), "warning": warning,
                "seconds": seconds, "first": r == start, "compiled": compiled,
                **({"stopped": tracker.fired} if last and tracker and stopped else {})})
    elif warning is not None:
      warnings.warn(f"{round_fn.name}: {warning}", RuntimeWarning, stacklevel=3)
    if last:
      break
  return records


def make_scanned_fn(round_fn: Round, seed_batching: str = "auto"):
  """One jitted program for a whole run: `lax.scan` of the round over `budget.rounds` rounds, then
  the final training and evaluation, all seeds together. Called as `fn(states, pool, test) ->
  (states, round_metrics [rounds, seeds, ...], final_metrics [seeds, ...])`."""
  step = over_seeds(round_fn, seed_batching)
  final = over_seeds(round_fn.train_and_evaluate, seed_batching)
  rounds = round_fn.budget.rounds

  def program(states, pool, test):
    states, per_round = jax.lax.scan(lambda st, _: step(st, pool, test), states, None,
                                     length=rounds)
    states, last = final(states, pool, test)
    return states, per_round, last

  donate = (0,) if jax.default_backend() != "cpu" else ()
  return jax.jit(program, donate_argnums=donate)


def run_scanned(round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None,
                seeds: Sequence[int], splits: Sequence[Splits], *,
                train_index: np.ndarray | None = None, fn=None, seed_batching: str = "auto",
                states: ALState | None = None) -> list[dict]:
  """`run` without checkpoints or progress: every round of every seed in one compiled program
  (`make_scanned_fn`), with no host round trip until the end. Same keys, so the same selections and
  (up to floating-point reassociation) the same accuracies as `run`. Each record's "seconds" is the
  run's wall time divided by its rounds + 1 evaluations. Returns records in `run`'s format."""
  check_run(round_fn, pool, test, seeds, splits)
  rounds = round_fn.budget.rounds
  if states is None:
    states = round_fn.init_states(seeds, splits, pool)
  if not bool(jnp.all(states.round == 0)):
    raise ArgumentError(f"run_scanned starts at round 0; the {{states}} are at rounds "
                        f"{np.asarray(states.round).tolist()} (resume with run).")
  fn = fn or make_scanned_fn(round_fn, seed_batching)
  t0 = time.perf_counter()
  _, per_round, last = jax.device_get(fn(states, pool, test))
  seconds = (time.perf_counter() - t0) / (rounds + 1)
  records = [{"seed": int(s), "rounds": []} for s in seeds]
  index_map = np.arange(pool.x.shape[0]) if train_index is None else np.asarray(train_index)
  for r in range(rounds):
    record_round(records, r, jax.tree.map(lambda a, r=r: a[r], per_round), index_map, seconds)
  record_round(records, rounds, last, index_map, seconds)
  return records
