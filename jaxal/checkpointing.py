"""Checkpoints of an active-learning run: one orbax `CheckpointManager` per strategy.

Layout: `<workdir>/checkpoints/<strategy>/<step>/` with two items,

  state: the stacked `ALState` of all seeds (leading seed axis [S, ...]; keys are raw uint32 [S, 2]
         `jax.random.PRNGKey`s, so orbax's standard handler stores them as plain arrays);
  meta:  JSON {"step", "complete", "seeds", "records", "checksums"}: the per-seed records of the
         evaluations done so far (`jaxal.run`'s output format) and a CRC-32 of every state leaf;
         "empty_leaves" lists [leaf index, shape] of zero-size leaves (orbax cannot store them; they
         are saved as one-element placeholders and restored with their exact shape).

Step s means "s evaluations done": the state is the input of round s (`state.round == s` for every
seed), and `records[i]["rounds"]` holds rounds 0..s-1. The last step of a strategy, `rounds + 1`,
is marked complete.

Atomicity: orbax writes a step into `<step>.orbax-checkpoint-tmp-<id>/` and renames it to `<step>/`
only once every file is written (saving is synchronous here, so a printed progress line means its
checkpoint is final). A process killed mid-save leaves only the temporary folder, which orbax never
lists as a step (and deletes when the manager opens). A step that is complete on disk but damaged
afterwards (truncated or altered files) fails to restore or fails its checksums; `restore_latest`
then moves it to `<workdir>/checkpoints/_corrupt/` and falls back to the previous step, saying so.
"""
from __future__ import annotations

import contextlib
import errno
import gc
import logging
import os
import shutil
import sys
import time
import zlib
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

CORRUPT_DIR = "_corrupt"


@contextlib.contextmanager
def _quiet_orbax() -> Iterator[None]:
  """Orbax logs several INFO lines per save through absl, which `absl.app` sends to stderr; keep
  them out of the progress output (warnings still show), and drop the exceptions orbax logs with
  their tracebacks (a failed write or read): they reach jaxal, which reports them in one line."""
  logger = logging.getLogger("absl")
  level = logger.level
  if logger.getEffectiveLevel() < logging.WARNING:
    logger.setLevel(logging.WARNING)
  _hide_closed_loop_noise()
  _ORBAX_FILTER.quiet += 1
  try:
    yield
  finally:
    _ORBAX_FILTER.quiet -= 1
    logger.setLevel(level)


class _OrbaxInfoFilter(logging.Filter):
  """Drops orbax's INFO (and DEBUG) housekeeping lines, e.g. "Cleaning up existing temporary
  directories", which absl would print to stderr; its warnings and errors pass."""

  quiet = 0  # > 0 inside `_quiet_orbax`: orbax's logged exceptions are dropped too

  def filter(self, record: logging.LogRecord) -> bool:
    if f"{os.sep}orbax{os.sep}" not in (record.pathname or ""):
      return True
    if self.quiet and record.exc_info:
      return False  # the exception reaches jaxal, which reports it in one line
    return record.levelno >= logging.WARNING


def _install_orbax_info_filter() -> _OrbaxInfoFilter:
  logger = logging.getLogger("absl")
  for f in logger.filters:
    if isinstance(f, _OrbaxInfoFilter):
      return f
  f = _OrbaxInfoFilter()
  logger.addFilter(f)
  return f


_ORBAX_FILTER = _install_orbax_info_filter()


def _drop_failed_reads() -> None:
  """A failed restore leaves orbax's other read tasks with exceptions nobody retrieves; asyncio
  would print each (with its tensorstore spec) when they are collected. Collect them quietly."""
  logger = logging.getLogger("asyncio")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    gc.collect()
  finally:
    logger.setLevel(level)


def _fill_empty(tree: Any) -> tuple[Any, list[list]]:
  """Orbax refuses zero-size arrays (e.g. the validation set of a run with --val_size=0): replace
  each by a one-element placeholder of its dtype. Returns (tree, [[leaf index, shape], ...]) for
  `_restore_empty`."""
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  empty, out = [], []
  for i, x in enumerate(leaves):
    if int(np.prod(x.shape)) == 0:
      empty.append([i, [int(d) for d in x.shape]])
      x = (jax.ShapeDtypeStruct((1,), x.dtype) if isinstance(x, jax.ShapeDtypeStruct)
           else np.zeros((1,), x.dtype))
    out.append(x)
  return jax.tree_util.tree_unflatten(treedef, out), empty


def _restore_empty(tree: Any, empty: Sequence[Sequence]) -> Any:
  """Puts back the zero-size leaves `_fill_empty` replaced, with their exact shapes and dtypes."""
  if not empty:
    return tree
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  for i, shape in empty:
    leaves[i] = jax.numpy.zeros(tuple(shape), leaves[i].dtype)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _errno_of(e: BaseException) -> int | None:
  """The errno of a file-system failure that orbax or tensorstore reports as text (or chains)."""
  for _ in range(8):  # the exception and what it chains
    if e is None:
      break
    if isinstance(e, OSError) and e.errno is not None:
      return e.errno
    text = str(e)
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
      if os.strerror(code) in text:
        return code
    e = e.__cause__ or e.__context__
  return None


def _closed_loop_noise(exc_type, exc, tb) -> bool:
  """Tensorstore reads still in flight when orbax's event loop closed after a failed restore call
  back into that loop and print "RuntimeError: Event loop is closed" (one traceback each)."""
  return (exc_type is RuntimeError and str(exc) == "Event loop is closed"
          and tb is not None and "asyncio" in tb.tb_frame.f_code.co_filename)


def _hide_closed_loop_noise() -> None:
  """Installs (once) hooks that drop `_closed_loop_noise` and pass everything else on."""
  if getattr(sys.excepthook, "_jaxal_quiet", False):
    return
  previous_except, previous_unraisable = sys.excepthook, sys.unraisablehook

  def excepthook(exc_type, exc, tb):
    if not _closed_loop_noise(exc_type, exc, tb):
      previous_except(exc_type, exc, tb)

  def unraisablehook(args):
    if not _closed_loop_noise(args.exc_type, args.exc_value, args.exc_traceback):
      previous_unraisable(args)

  excepthook._jaxal_quiet = True  # type: ignore[attr-defined]
  sys.excepthook, sys.unraisablehook = excepthook, unraisablehook
  logging.getLogger("asyncio").addFilter(_orbax_unretrieved)


def _orbax_unretrieved(record: logging.LogRecord) -> bool:
  """Drops asyncio's "exception was never retrieved" for orbax's writes and reads that failed
  with the error jaxal already reports (a full disk, a damaged checkpoint)."""
  if "never retrieved" not in str(record.msg) or not record.exc_info:
    return True
  tb = record.exc_info[2]
  while tb is not None:
    if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
      return False
    tb = tb.tb_next
  return True


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used (unreadable, inconsistent or failing its checksums)."""


def checkpoint_dir(workdir: str, strategy: str) -> str:
  """`<workdir>/checkpoints/<strategy>` (absolute: orbax wants absolute paths); in a run of several
  processes, every process uses the folder of process 0 (`JAXAL_CHECKPOINT_ROOT`, set by
  `jaxal.cli.run`), as orbax's multi-process save needs."""
  root = os.environ.get(CHECKPOINT_ROOT) or os.path.join(os.path.abspath(workdir), "checkpoints")
  return os.path.join(root, strategy)


CHECKPOINT_ROOT = "JAXAL_CHECKPOINT_ROOT"


def checksums(tree: Any) -> list[int]:
  """CRC-32 of the bytes of every leaf of `tree`, in `jax.tree.leaves` order."""
  return [zlib.crc32(np.ascontiguousarray(np.asarray(x)).tobytes())
          for x in jax.tree.leaves(jax.device_get(tree))]


def stopped_and_final(records: Sequence[dict]) -> bool:
  """Whether every seed was stopped by a stopping rule and has its final evaluation (the round
  after the one the rule fired at)."""
  return bool(records) and all(
      r.get("stopped") and len(r.get("rounds", ())) == r["stopped"]["round"] + 2 for r in records)


class StrategyCheckpoints:
  """Saves and restores one strategy's stacked seed state and records.

  Args:
    workdir: the results directory; checkpoints go to `<workdir>/checkpoints/<strategy>/`.
    strategy: the strategy name (one manager per strategy).
    rounds: acquisition rounds of the run; step `rounds + 1` is the complete run.
    every: save after every `every` evaluations (the final one is always saved); must be >= 1.
    keep: how many steps to keep on disk (orbax `max_to_keep`), >= 1.
    log: where messages about resuming and fallbacks go.
  """

  def __init__(self, workdir: str, strategy: str, rounds: int, every: int = 1, keep: int = 2,
               log: Callable[[str], None] = print):
    if every < 1 or keep < 1:
      raise ValueError(f"checkpoint every={every} and keep={keep} must both be >= 1.")
    self.directory = checkpoint_dir(workdir, strategy)
    self.strategy, self.rounds, self.every, self.log = strategy, rounds, every, log
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, cleanup_tmp_directories=True,
        enable_async_checkpointing=False)
    with _quiet_orbax():
      self.manager = ocp.CheckpointManager(self.directory, options=options,
                                           item_names=("state", "meta"))

  def steps(self) -> list[int]:
    """Finalised steps on disk, oldest first."""
    return sorted(self.manager.all_steps())

  def save(self, step: int, states: Any, records: Sequence[dict]) -> bool:
    """Saves after `step` evaluations when `step` is a multiple of `every` or the last step.

    states: the stacked `ALState` [S, ...] that is the input of round `step`; records: one dict
    per seed with `step` rounds (a run that a stopping rule ended early is complete when every
    record has "stopped"). Returns whether a checkpoint was written."""
    complete = step == self.rounds + 1 or stopped_and_final(records)
    if not complete and step % self.every:
      return False
    if any(len(r["rounds"]) != step for r in records):
      raise ValueError(f"save(step={step}): records hold "
                       f"{[len(r['rounds']) for r in records]} rounds, expected {step}.")
    meta = {"step": int(step), "complete": bool(complete),
            "seeds": [int(r["seed"]) for r in records], "records": list(records),
            "checksums": checksums(states)}
    states, meta["empty_leaves"] = _fill_empty(states)
    try:
      with _quiet_orbax():
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(states),
                                                        meta=ocp.args.JsonSave(meta)), force=True)
        self.manager.wait_until_finished()
    except OSError as e:
      _hide_closed_loop_noise()
      if e.filename is None:
        raise OSError(e.errno, e.strerror, self.directory) from e
      raise
    except Exception as e:  # tensorstore reports file-system errors as ValueError and others
      _hide_closed_loop_noise()
      code = _errno_of(e)
      if code is None:
        raise
      raise OSError(code, os.strerror(code), self.directory) from e
    return True

  def restore(self, step: int, target: Any, seeds: Sequence[int]) -> tuple[Any, list[dict], bool]:
    """Restores `step` into the structure, shapes and dtypes of `target` (a state or its
    `jax.eval_shape`). Returns (states, records, complete); raises CheckpointError if the step is
    unreadable or inconsistent."""
    abstract, empty = _fill_empty(jax.tree.map(ocp.utils.to_shape_dtype_struct, target))
    try:
      with _quiet_orbax():
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
      states, meta = out["state"], out["meta"]
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
      _hide_closed_loop_noise()
      _drop_failed_reads()
      detail = " ".join(str(e).split())
      raise CheckpointError(f"cannot be read ({type(e).__name__}: {detail[:300]})") from e
    if not isinstance(meta, dict) or meta.get("step") != step:
      raise CheckpointError("has metadata that is missing or names another step")
    if meta.get("seeds") != [int(s) for s in seeds]:
      raise CheckpointError(f"was saved for seeds {meta.get('seeds')}, not {list(seeds)}")
    records = meta.get("records")
    if (not isinstance(records, list) or len(records) != len(seeds)
        or any(len(r.get("rounds", ())) != step for r in records)):
      raise CheckpointError(f"has records that do not hold {step} rounds per seed")
    if meta.get("empty_leaves", []) != empty:
      raise CheckpointError("holds arrays of other shapes than this run's state")
    states = _restore_empty(states, empty)
    if meta.get("checksums") != checksums(states):
      raise CheckpointError("fails its checksums (the state files were altered)")
    rounds = np.asarray(jax.device_get(states.round))
    # A run a stopping rule ended is complete after its final evaluation, which does not advance
    # the round: its states are at step - 1.
    expected = step - 1 if meta.get("complete") and stopped_and_final(records) else step
    if step <= self.rounds and not (rounds == expected).all():
      raise CheckpointError(f"holds a state at round {rounds.tolist()}, not {step}")
    return states, records, bool(meta.get("complete"))

  def restore_latest(self, target: Any, seeds: Sequence[int]):
    """The newest step that restores cleanly, as (step, states, records, complete), or None.

    A step that fails is moved to `<workdir>/checkpoints/_corrupt/` (so later saves can reuse its
    number) and the previous one is tried, with a message naming both."""
    for step in reversed(self.steps()):
      if step <= self.rounds and self._final_of_a_shorter_run(step):
        # The run was extended (more rounds): that step's final training is redone as an ordinary
        # round from the step before it, which computes the same evaluation bit for bit.
        self._retire(step)
        self.log(f"[{self.strategy}] extending: the final training of the {step - 1}-round run is "
                 f"redone as round {step - 1} of {self.rounds}")
        continue
      try:
        states, records, complete = self.restore(step, target, seeds)
        return step, states, records, complete
      except CheckpointError as e:
        moved = self._quarantine(step)
        older = [s for s in self.steps() if s < step]
        then = (f"falling back to step {older[-1]}" if older
                else "no older checkpoint; starting this strategy from round 0")
        self.log(f"[{self.strategy}] warning: checkpoint step {step} {e}; moved it to {moved}; "
                 f"{then}.")
    return None

  def _final_of_a_shorter_run(self, step: int) -> bool:
    """Whether `step` holds the final evaluation of a run with fewer rounds (complete, not ended
    by a stopping rule)."""
    try:
      with _quiet_orbax():
        meta = self.manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"]
    except Exception:  # pylint: disable=broad-except  (a damaged step: restore() will say so)
      _drop_failed_reads()
      return False
    return (isinstance(meta, dict) and bool(meta.get("complete"))
            and not stopped_and_final(meta.get("records") or []))

  def _retire(self, step: int) -> None:
    shutil.rmtree(os.path.join(self.directory, str(step)), ignore_errors=True)
    with _quiet_orbax():
      self.manager.reload()

  def _quarantine(self, step: int) -> str:
    src = os.path.join(self.directory, str(step))
    dst_dir = os.path.join(os.path.dirname(self.directory), CORRUPT_DIR)
    os.makedirs(dst_dir, exist_ok=True)
    dst = os.path.join(dst_dir, f"{self.strategy}-step{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(src):
      shutil.move(src, dst)
    with _quiet_orbax():
      self.manager.reload()
    return dst

  def close(self) -> None:
    with _quiet_orbax():
      self.manager.wait_until_finished()
      self.manager.close()
