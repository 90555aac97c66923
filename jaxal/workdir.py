"""A results directory across invocations: what a re-run may change (`RESUME_IGNORED`), the
differences that make it refuse (`config_differences`), `--overwrite`, and which strategies are
already complete in a previous results.json.

A workdir written by a version of jaxal whose config.json lacks settings added since is refused with
the list of those settings (`(unset) -> value`); `--overwrite` replaces it.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable, Mapping

from jaxal import checkpointing, human
from jaxal.settings import ConfigError, parse_list


# Settings that do not change the results: a resumed run may change them freely.
RESUME_IGNORED = ("workdir", "cache_dir", "overwrite", "checkpoint_every", "keep_checkpoints",
                  "jax_version", "backend", "seed_batching", "dropout_masks", "host", "port",
                  "token", "progress")


def _checkpoint_settings(cfg: Mapping[str, Any]) -> tuple[int, int, bool]:
  """(checkpoint_every, keep_checkpoints, overwrite), checked; defaults 1, 2, False."""
  every = cfg.get("checkpoint_every", 1)
  keep = cfg.get("keep_checkpoints", 2)
  if int(every) != every or every < 0:
    raise ConfigError(f"--checkpoint_every must be an integer >= 0 (0 = no checkpoints), got "
                      f"{every!r}.")
  if int(keep) != keep or keep < 1:
    raise ConfigError(f"--keep_checkpoints must be an integer >= 1, got {keep!r}.")
  return int(every), int(keep), bool(cfg.get("overwrite", False))


def _show(value: Any) -> str:
  return "(unset)" if value is _MISSING else json.dumps(value)


_MISSING = object()


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """Settings that differ between two config records, as "key old -> new" in key order, ignoring
  `RESUME_IGNORED`. Values are compared after a JSON round trip (lists == tuples)."""
  old, new = json.loads(json.dumps(dict(old))), json.loads(json.dumps(dict(new)))
  diffs = []
  for key in sorted(set(new) | set(old)):
    if key in RESUME_IGNORED:
      continue
    a, b = old.get(key, _MISSING), new.get(key, _MISSING)
    if a != b:
      diffs.append(f"{key} {_show(a)} -> {_show(b)}")
  return diffs


def _prepare_workdir(workdir: str, config_record: Mapping[str, Any], overwrite: bool,
                     log: Callable[[str], None]) -> Mapping | None:
  """Checks that `workdir` is empty or holds a run with the same settings (else ConfigError),
  removes its checkpoints with `overwrite`, and returns the previous results.json (or None)."""
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  if overwrite:
    ckpt = os.path.join(workdir, "checkpoints")
    if os.path.isdir(ckpt) or os.path.exists(config_path):
      log(f"--overwrite: replacing the run in {workdir}")
    shutil.rmtree(ckpt, ignore_errors=True)
    human.remove_rounds(workdir)
    return None
  if not os.path.exists(config_path):
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
      raise ConfigError(f"--workdir={workdir} holds checkpoints but no config.json; use "
                        "--overwrite to replace them.")
    return None
  try:
    with open(config_path) as f:
      old = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"--workdir={workdir}: cannot read its config.json ({e}); use --overwrite "
                      "to replace the run.") from e
  diffs = config_differences(_comparable(old, extendable=True),
                             _comparable(config_record, extendable=True))
  if diffs:
    raise ConfigError(f"--workdir={workdir} holds a run with different settings: "
                      f"{', '.join(diffs)}; use --overwrite to replace it.")
  _log_extension(workdir, old, config_record, log)
  for key in ("jax_version", "backend", "dropout_masks"):
    was = old.get(key)
    if was != config_record[key]:
      log(f"note: the run in {workdir} was started with {key} {was}; resuming with "
          f"{config_record[key]} may not reproduce it bit for bit.")
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      previous = json.load(f)
  except (OSError, ValueError):
    return None
  if config_differences(_comparable(previous.get("config", {}), extendable=True),
                        _comparable(config_record, extendable=True)):
    return None
  return previous


# An existing run is extended, not refused, when only these change: more rounds (each strategy
# continues from its checkpoint before the old final training), other strategies (those already
# done are kept, new ones run) or more seeds (run as a new group beside the old ones).
EXTENDABLE = ("rounds", "strategies", "seeds", "seed_groups")


def _log_extension(workdir: str, old: Mapping[str, Any], new: Mapping[str, Any],
                   log: Callable[[str], None]) -> None:
  """Refuses fewer rounds (a finished run cannot be cut back) and says how a run is extended."""
  if old.get("rounds") is not None and new["rounds"] < old["rounds"]:
    raise ConfigError(f"--workdir={workdir} holds a run of {old['rounds']} rounds; --rounds="
                      f"{new['rounds']} would cut it back; use --overwrite to replace it.")
  if old.get("seeds") is not None and new["seeds"] < old["seeds"]:
    raise ConfigError(f"--workdir={workdir} holds a run of {old['seeds']} seeds; --seeds="
                      f"{new['seeds']} would cut it back; use --overwrite to replace it.")
  if old.get("rounds") is not None and new["rounds"] > old["rounds"]:
    log(f"extending the run in {workdir}: rounds {old['rounds']} -> {new['rounds']} (each "
        "strategy continues from its last round)")
  if old.get("seeds") is not None and new["seeds"] > old["seeds"]:
    log(f"extending the run in {workdir}: adding seeds {old['seeds']}..{new['seeds'] - 1} (the "
        "seeds already done are kept)")
  added = [n for n in parse_list(new["strategies"]) if n not in parse_list(old.get("strategies",
                                                                                      ""))]
  if added:
    log(f"extending the run in {workdir}: adding {', '.join(added)} (the strategies already done "
        "are kept)")


def _comparable(record: Mapping[str, Any], extendable: bool = False) -> dict:
  """A config record as compared for resuming: "terminal" and "human" are the same run (a person
  answering through the terminal or the files, which share labels.csv), so either can take over
  from the other."""
  record = dict(record)
  record.setdefault("initial_by", "random")   # runs recorded before --initial_by existed
  if extendable:
    for key in EXTENDABLE:
      record.pop(key, None)
  if record.get("oracle") in human.HUMAN_ORACLES:
    record["oracle"] = "human"
  return record


def _complete_runs(previous: Mapping | None, names: list[str], seeds: list[int],
                   rounds: int) -> dict[str, list[dict]]:
  """Strategies whose every seed has all `rounds + 1` evaluations in a previous results.json."""
  done = {}
  for name in names:
    runs = [r for r in (previous or {}).get("runs", []) if r.get("strategy") == name]
    if ([r.get("seed") for r in runs] == seeds
        and (all(len(r.get("rounds", ())) == rounds + 1 for r in runs)
             or checkpointing.stopped_and_final(runs))):
      done[name] = [{k: v for k, v in r.items() if k != "strategy"} for r in runs]
  return done


def seed_groups(workdir: str, seeds: int, overwrite: bool) -> list[list[int]]:
  """The seeds 0..seeds-1 as the groups that run together: one group for a new run; a run extended
  by more seeds keeps its groups (each has its own checkpoints) and adds one for the new seeds."""
  if overwrite:
    return [list(range(seeds))]
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      old = json.load(f)
  except (OSError, ValueError):
    return [list(range(seeds))]
  groups = old.get("seed_groups") or [list(range(int(old.get("seeds", seeds))))]
  done = sum(len(g) for g in groups)
  return groups + [list(range(done, seeds))] if seeds > done else groups
