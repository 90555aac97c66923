"""A person's run one round at a time: `PersonRun` restores the run from its workdir, opens the
current round's question (trained and asked once, then kept on disk as the pending question, its
files written), and tells the state the answers (then checkpoints). The files flow, the terminal and
the web page drive the same object, so any of them can take over from another mid-round.

Unlabeled pools (`Dataset.unlabeled`): the first question of a run with no training labels is a
cold start (`jaxal.human.coldstart`); a `holdout` share of every round's images is kept out of
training once labeled, and the network's accuracy on all such held-out answers so far is the
round's `heldout_accuracy` (there is no test set). The network's proposed class and its probability
go with every image asked once a network is trained.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import checkpointing, reporting, scoring, training
from jaxal.annotation import DECLINE, SKIP, UNSURE, tell_query
from jaxal.data.splits import Splits
from jaxal.human import coldstart, labelstudio
from jaxal.human.answers import ClassNames, read_answers, round_dir
from jaxal.human.pending import (UNSURE_FILE, Pending, _drop_pending_before, _load_pending,
                                 _save_pending, pending_dir)
from jaxal.human.question import status_line, write_question
from jaxal.records import record_round
from jaxal.round import Round, over_seeds
from jaxal.state import SELECT, LabeledArrays, round_key


def heldout_slots(r: int, k: int, share: float) -> np.ndarray:
  """bool [k]: which of round r's k images are held out once labeled: exactly round(k * share)
  spread evenly, with an offset that moves from round to round."""
  if share <= 0:
    return np.zeros(k, bool)
  phase = (r * 0.6180339887) % 1.0
  marks = np.floor(np.arange(1, k + 1) * share + phase) - np.floor(np.arange(k) * share + phase)
  return marks > 0


class _Programs:
  """The compiled parts of a person's round, over a leading seed axis of 1 (the checkpoint layout):
  train + evaluate + ask_query, tell_query, the final train + evaluate, and a predictor."""

  def __init__(self, round_fn: Round, seed_batching: str):
    def train_ask(state, pool, test):
      state, metrics = round_fn.train_and_evaluate(state, pool, test)
      query = round_fn.ask_query(state, pool)
      return state, {**metrics, "selected": query.indices}, query
    self.train_ask = jax.jit(over_seeds(train_ask, seed_batching))
    self.tell = jax.jit(jax.vmap(tell_query))
    self.final = jax.jit(over_seeds(round_fn.train_and_evaluate, seed_batching))
    method = round_fn.uncertainty.method
    self.probs = jax.jit(lambda states, x: scoring.mean_probs(
        round_fn.model, jax.tree.map(lambda a: a[0], states.variables), x, method))


class PersonRun:
  """One strategy and one seed with a person as the oracle, resumed from `workdir`.

  `question()` opens the current round (None once the run is complete); `tell(images, clusters)`
  records its answers (codes in the order of the question's items) and checkpoints.
  `export_dir` gets the labels and the trained model when the run completes."""

  def __init__(self, round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None, seed: int,
               split: Splits, *, images: np.ndarray, class_names: Sequence[str],
               train_index: np.ndarray, workdir: str, keep: int = 2, seed_batching: str = "auto",
               log: Callable[[str], None] = print, holdout: float = 0.0,
               cold_start: str = "typiclust", known: np.ndarray | None = None):
    if not 0 <= holdout < 1:
      raise ValueError(f"PersonRun: holdout must be in [0, 1), got {holdout}.")
    coldstart.check(cold_start)
    self.round_fn, self.pool, self.test, self.seed = round_fn, pool, test, int(seed)
    self.images, self.workdir, self.log = images, workdir, log
    self.classes = ClassNames(tuple(class_names))
    self.train_index = np.asarray(train_index)
    self.position = {int(t): i for i, t in enumerate(self.train_index)}
    self.y = np.asarray(pool.y) if known is None else np.asarray(known)
    self.holdout, self.cold_start = float(holdout), cold_start
    self.rounds = round_fn.budget.rounds
    self.name = round_fn.name
    fresh = round_fn.init_states([seed], [split], pool)
    self.progs = _Programs(round_fn, seed_batching)
    self.ckpt = checkpointing.StrategyCheckpoints(workdir, self.name, self.rounds, every=1,
                                                  keep=keep, log=log)
    found = self.ckpt.restore_latest(fresh, [seed])
    if found is None:
      self.step, self.states, self.records, self.complete = 0, fresh, [
          {"seed": int(seed), "rounds": []}], False
    else:
      self.step, self.states, self.records, self.complete = found
      if not self.complete:
        log(f"[{self.name}] resuming from checkpoint step {self.step} (rounds 0..{self.step - 1} "
            "answered)")
    _drop_pending_before(workdir, self.step)
    self.pending: Pending | None = None
    self._features = None

  def close(self) -> None:
    self.ckpt.close()

  # -- what the person has answered so far ------------------------------------------------------

  def heldout(self) -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, labels) of every held-out answer told so far."""
    pairs = [p for row in self.records[0]["rounds"] for p in row.get("heldout", [])]
    idx = np.array([self.position[int(i)] for i, _ in pairs], np.int64)
    return idx, np.array([int(c) for _, c in pairs], np.int32)

  def labels(self) -> list[tuple[int, int]]:
    """(dataset index, class) of every item labeled so far: the state's labels and the held-out
    answers."""
    st = jax.tree.map(lambda a: np.asarray(a)[0], self.states)
    out = [(int(self.train_index[i]), int(st.labels[i])) for i in np.flatnonzero(st.labeled)]
    hidx, hy = self.heldout()
    out += [(int(self.train_index[i]), int(c)) for i, c in zip(hidx, hy)]
    return sorted(out)

  def _probs(self, states, idx: np.ndarray) -> np.ndarray:
    """float [len(idx), C] predicted by the trained `states`, padded to a power of two (few
    compilations)."""
    if idx.size == 0:
      return np.zeros((0, self.round_fn.num_classes), np.float32)
    size = 1 << max(4, math.ceil(math.log2(idx.size)))
    padded = np.concatenate([idx, np.zeros(size - idx.size, idx.dtype)])
    probs = training.apply_in_chunks(lambda xb: self.progs.probs(states, xb),
                                     self.pool.x[jnp.asarray(padded)],
                                     self.round_fn.train_config.eval_batch_size)
    return np.asarray(probs)[:idx.size]

  def _heldout_metrics(self, states) -> dict:
    idx, y = self.heldout()
    if not idx.size:
      return {"heldout_size": 0, "heldout_accuracy": None} if self.holdout else {}
    pred = self._probs(states, idx).argmax(-1)
    return {"heldout_size": int(idx.size), "heldout_accuracy": float(np.mean(pred == y))}

  # -- the round ----------------------------------------------------------------------------------

  def question(self) -> Pending | None:
    """The open question of round `step`: the pending one on disk, or trained and asked now (its
    files written). None when the run is complete (the final training and evaluation run here)."""
    if self.complete:
      return None
    r = self.step
    if r == self.rounds:
      t0 = time.perf_counter()
      self.states, metrics = self.progs.final(self.states, self.pool, self.test)
      record_round(self.records, r, jax.device_get(metrics), self.train_index,
                   time.perf_counter() - t0)
      self.records[0]["rounds"][-1].update(self._heldout_metrics(self.states))
      self.ckpt.save(r + 1, self.states, self.records)
      self.complete = True
      self.log(f"[{self.name}] round {r:>3}/{self.rounds}  final: "
               f"{status_line(self.records[0]['rounds'][-1])}")
      return None
    p = _load_pending(self.workdir, r, self.states)
    if p is None:
      p = self._ask(r)
      _save_pending(self.workdir, p, self.name)
    self.pending = p
    return p

  def _ask(self, r: int) -> Pending:
    t0 = time.perf_counter()
    if int(np.asarray(self.states.labeled).sum()) == 0:   # nothing to train on: cold start
      if self._features is None:
        self._features = coldstart.pca_features(np.asarray(self.pool.x))
      st = jax.tree.map(lambda a: np.asarray(a)[0], self.states)
      query0 = coldstart.cold_start_query(
          round_key(st.key, r, SELECT), self._features, st.selectable & ~st.labeled,
          self.round_fn.budget.query_size, self.cold_start, self.round_fn.num_classes,
          min(64, self.pool.x.shape[0]))
      trained = self.states
      query = jax.tree.map(lambda a: jnp.asarray(a)[None], query0)
      record = {"round": r, "labels": 0, "interactions": int(np.asarray(st.interactions)),
                "cold_start": self.cold_start,
                "selected": [int(self.train_index[i]) for i in np.asarray(query0.indices)
                             if i >= 0], "seconds": time.perf_counter() - t0}
      probs = None
    else:
      trained, metrics, query = self.progs.train_ask(self.states, self.pool, self.test)
      scratch = [{"seed": self.seed, "rounds": []}]
      record_round(scratch, r, jax.device_get(metrics), self.train_index,
                   time.perf_counter() - t0)
      record = scratch[0]["rounds"][0]
      record.update(self._heldout_metrics(trained))
      q_idx = np.asarray(query.indices)[0]
      probs = self._probs(trained, np.where(q_idx >= 0, q_idx, 0).astype(np.int64))
    q0 = jax.tree.map(lambda a: np.asarray(a)[0], query)
    imgs, clus = write_question(self.workdir, r, self.rounds, q0, record, self.images,
                                self.train_index, self.classes)
    if probs is not None:
      for it, pr in zip(imgs, probs[np.asarray(q0.indices) >= 0]):
        it.proposed, it.score = int(pr.argmax()), float(pr.max())
    held = heldout_slots(r, len(imgs), self.holdout)
    for it, h in zip(imgs, held):
      it.heldout = bool(h)
    if imgs:
      labelstudio.write_tasks(self.workdir, r, imgs, self.classes)
    return Pending(r, trained, query, record, imgs, clus)

  def read_files(self) -> tuple[list, list]:
    """The answers in the round's labels.csv / clusters.csv (None where blank), in item order."""
    p = self.pending
    rdir = round_dir(self.workdir, p.round)
    out = []
    for name, items in (("labels.csv", p.images), ("clusters.csv", p.clusters)):
      out.append(read_answers(os.path.join(rdir, name), items, self.classes)[0] if items else [])
    return out[0], out[1]

  def tell(self, img_ans: Sequence[int], clu_ans: Sequence[int]) -> None:
    """Tells the state the answers of the open question (every item answered), appends the
    round's record and checkpoints."""
    p = self.pending
    self.states = _tell(self.progs, p, (list(img_ans), list(clu_ans)), self.records,
                        self.train_index, self.y)
    self.ckpt.save(p.round + 1, self.states, self.records)
    write_unsure(self.workdir, self.records)
    shutil.rmtree(pending_dir(self.workdir, p.round), ignore_errors=True)
    self.step, self.pending = p.round + 1, None


def write_unsure(workdir: str, records: Sequence[dict]) -> None:
  rows = [["index", "round"]] + [[i, row["round"]] for rec in records for row in rec["rounds"]
                                 for i in row.get("unsure", [])]
  if len(rows) > 1 or os.path.exists(os.path.join(workdir, UNSURE_FILE)):
    from jaxal.human.answers import _csv_text  # pylint: disable=import-outside-toplevel
    reporting.write_atomic(os.path.join(workdir, UNSURE_FILE), _csv_text(rows))


def _tell(progs: _Programs, p: Pending, answers, records: list[dict], train_index: np.ndarray,
          y: np.ndarray) -> Any:
  """Tells the state the answers and appends the round's record (with skipped / unsure / held-out
  lists and, for clusters, the statistics `annotation.cluster_round` reports). Returns the next
  states. A held-out image's class is recorded, and the image leaves the pool untrained."""
  img_ans, clu_ans = answers
  q = jax.tree.map(lambda a: np.asarray(a)[0], p.query)
  valid = [int(i) for i in q.indices if i >= 0]
  codes = np.asarray(img_ans, np.int32).reshape(-1)
  held = np.array([getattr(it, "heldout", False) for it in p.images], bool) & (codes >= 0)
  told = np.where(held, UNSURE, codes).astype(np.int32)
  image_codes = np.full(q.indices.shape, SKIP, np.int32)
  image_codes[np.asarray(q.indices) >= 0] = told
  cluster_codes = np.full(q.clusters.shape, DECLINE, np.int32)
  cluster_codes[np.asarray(q.clusters) >= 0] = np.asarray(clu_ans, np.int32).reshape(-1)
  states, by_cluster = progs.tell(p.states, p.query, image_codes[None], cluster_codes[None])
  if held.any():
    states = states.replace(interactions=states.interactions + int(held.sum()))
  record = dict(p.record)
  record["skipped"] = [int(train_index[i]) for i, a in zip(valid, codes) if a == SKIP]
  record["unsure"] = [int(train_index[i]) for i, a in zip(valid, codes) if a == UNSURE]
  if held.any() or any(getattr(it, "heldout", False) for it in p.images):
    record["heldout"] = [[int(train_index[i]), int(a)] for i, a, h in zip(valid, codes, held) if h]
  if q.clusters.shape[0]:
    newly = np.asarray(by_cluster)[0]
    labels = np.asarray(states.labels)[0]
    n_new = int(newly.sum())
    known = bool(np.all(y[newly] >= 0))
    accuracy = (np.float32(np.sum(newly & (labels == y))) / np.float32(max(n_new, 1))
                if n_new and known else None)
    reviewed = np.asarray(q.clusters) >= 0
    record.update({"cluster_labeled": n_new,
                   "cluster_label_accuracy": None if accuracy is None else float(accuracy),
                   "clusters_shown": int(reviewed.sum()),
                   "clusters_accepted": int(np.sum(reviewed & (cluster_codes >= 0)))})
  records[0]["rounds"].append(record)
  return states

