"""The question of a round that was asked and not yet answered, kept on disk between invocations:
the trained state and the `Query` (orbax / npz) with a JSON record, under
`<workdir>/checkpoints/pending/round_NNN/`, so answers are matched to what was asked and a re-run
does not train again."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from jaxal import checkpointing, reporting
from jaxal.annotation import Query
from jaxal.human.answers import Item, LabelFileError

PENDING_DIR = os.path.join("checkpoints", "pending")
UNSURE_FILE = "unsure.csv"


@dataclasses.dataclass
class Pending:
  """A round that was asked and not yet told: the trained state [1, ...], its `Query` [1, ...],
  the record of its evaluation and the items shown to the person."""
  round: int
  states: Any
  query: Query
  record: dict
  images: list[Item]
  clusters: list[Item]


def pending_dir(workdir: str, r: int) -> str:
  """`<workdir>/checkpoints/pending/round_NNN` (absolute: orbax wants absolute paths)."""
  return os.path.join(os.path.abspath(workdir), PENDING_DIR, f"round_{r:03d}")


def _save_pending(workdir: str, p: Pending, strategy: str) -> None:
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  path = pending_dir(workdir, p.round)
  shutil.rmtree(path, ignore_errors=True)
  with checkpointing._quiet_orbax():  # pylint: disable=protected-access
    ckptr = ocp.StandardCheckpointer()
    filled, empty = checkpointing._fill_empty(p.states)  # pylint: disable=protected-access
    ckptr.save(os.path.join(path, "state"), filled)
    ckptr.wait_until_finished()
    ckptr.close()
  # The query in .npz: orbax refuses zero-size arrays (a query without clusters has them).
  query = {f.name: np.asarray(getattr(p.query, f.name)) for f in dataclasses.fields(p.query)}
  np.savez(os.path.join(path, "query.npz"), **query)
  meta = {"round": p.round, "strategy": strategy, "record": p.record, "empty_leaves": empty,
          "checksums": checkpointing.checksums({"states": p.states, "query": query}),
          "images": [dataclasses.asdict(it) for it in p.images],
          "clusters": [dataclasses.asdict(it) for it in p.clusters]}
  reporting.write_json_atomic(os.path.join(path, "pending.json"), meta)  # last: marks it complete


def _load_pending(workdir: str, r: int, like: Any) -> Pending | None:
  """The pending question of round `r`, or None. `like` gives the structure, shapes and dtypes of
  the states (the trained state has those of the round's input).
  A half-written one (no pending.json) is removed; a damaged one raises LabelFileError saying what
  to delete."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  path = pending_dir(workdir, r)
  meta_path = os.path.join(path, "pending.json")
  if not os.path.exists(meta_path):
    shutil.rmtree(path, ignore_errors=True)
    return None
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    with checkpointing._quiet_orbax():  # pylint: disable=protected-access
      ckptr = ocp.StandardCheckpointer()
      target, _ = checkpointing._fill_empty(  # pylint: disable=protected-access
          jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
      states = checkpointing._restore_empty(  # pylint: disable=protected-access
          ckptr.restore(os.path.join(path, "state"), target), meta.get("empty_leaves", []))
      ckptr.close()
    with np.load(os.path.join(path, "query.npz")) as f:
      query = {name: f[name] for name in f.files}
    tree = {"states": states, "query": query}
    if meta.get("round") != r or meta.get("checksums") != checkpointing.checksums(tree):
      raise ValueError("its round or checksums do not match")
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise LabelFileError(f"the saved question of round {r} in {path} cannot be used ({e}); delete "
                         "that folder and run again to ask the round again.") from e
  return Pending(round=r, states=states, query=Query(**query), record=meta["record"],
                 images=[Item(**d) for d in meta["images"]],
                 clusters=[Item(**d) for d in meta["clusters"]])


def _pending_rounds(workdir: str) -> list[int]:
  """The rounds that have a folder under `<workdir>/checkpoints/pending`, in order."""
  root = os.path.join(os.path.abspath(workdir), PENDING_DIR)
  names = os.listdir(root) if os.path.isdir(root) else []
  return sorted(int(n[6:]) for n in names if n.startswith("round_") and n[6:].isdigit())


def open_question(workdir: str) -> tuple[int, list[Item]] | None:
  """(round, the items shown) of the newest question asked and not yet answered in `workdir`, read
  from its pending.json alone (no state is restored), or None when no complete one is open."""
  rounds = _pending_rounds(workdir)
  meta_path = os.path.join(pending_dir(workdir, rounds[-1]), "pending.json") if rounds else ""
  if not os.path.exists(meta_path):
    return None
  with open(meta_path) as f:
    meta = json.load(f)
  return int(meta["round"]), [Item(**d) for d in meta["images"]]


def _drop_pending_before(workdir: str, r: int) -> None:
  """Removes pending questions of rounds before `r` (already told and checkpointed)."""
  for q in _pending_rounds(workdir):
    if q < r:
      shutil.rmtree(pending_dir(workdir, q), ignore_errors=True)


def remove_rounds(workdir: str) -> None:
  """Deletes the round folders and unsure.csv of a run (for `--overwrite`)."""
  if not os.path.isdir(workdir):
    return
  for name in os.listdir(workdir):
    if name.startswith("round_") and name[6:].isdigit():
      shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  if os.path.exists(os.path.join(workdir, UNSURE_FILE)):
    os.remove(os.path.join(workdir, UNSURE_FILE))
