"""Checkpoints of an active-learning run: one orbax `CheckpointManager` per strategy.

Layout: `<workdir>/checkpoints/<strategy>/<step>/` with two items,

  state: the stacked `ALState` of all seeds (leading seed axis [S, ...]; keys are raw uint32 [S, 2]
         `jax.random.PRNGKey`s, so orbax's standard handler stores them as plain arrays);
  meta:  JSON {"step", "complete", "seeds", "records", "checksums"}: the per-seed records of the
         evaluations done so far (`jaxal.run`'s output format) and a CRC-32 of every state leaf.

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
import gc
import logging
import os
import shutil
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
  them out of the progress output (warnings still show)."""
  logger = logging.getLogger("absl")
  level = logger.level
  if logger.getEffectiveLevel() < logging.WARNING:
    logger.setLevel(logging.WARNING)
  try:
    yield
  finally:
    logger.setLevel(level)


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


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be used (unreadable, inconsistent or failing its checksums)."""


def checkpoint_dir(workdir: str, strategy: str) -> str:
  """`<workdir>/checkpoints/<strategy>` (absolute: orbax wants absolute paths)."""
  return os.path.join(os.path.abspath(workdir), "checkpoints", strategy)


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
    with _quiet_orbax():
      self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(states),
                                                      meta=ocp.args.JsonSave(meta)), force=True)
      self.manager.wait_until_finished()
    return True

  def restore(self, step: int, target: Any, seeds: Sequence[int]) -> tuple[Any, list[dict], bool]:
    """Restores `step` into the structure, shapes and dtypes of `target` (a state or its
    `jax.eval_shape`). Returns (states, records, complete); raises CheckpointError if the step is
    unreadable or inconsistent."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      with _quiet_orbax():
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
      states, meta = out["state"], out["meta"]
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
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
