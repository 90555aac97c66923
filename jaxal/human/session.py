"""A person's rounds: train and ask (compiled), write the question's files, get the answers (the
CSVs, or the terminal), tell the state, checkpoint. The round function is the same value the
simulated driver runs; only the oracle differs."""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Callable, Sequence, TextIO

import jax
import numpy as np

from jaxal import checkpointing, reporting
from jaxal.annotation import DECLINE, SKIP, UNSURE, Query, tell_query
from jaxal.data.splits import Splits
from jaxal.human.answers import (ClassNames, Item, _csv_header, _csv_text,
                                 read_answers, round_dir, write_answers)
from jaxal.human.pending import (UNSURE_FILE, Pending, _drop_pending_before, _load_pending,
                                 _save_pending, pending_dir)
from jaxal.human.pictures import _save_png, contact_sheet, display_image
from jaxal.human.terminal import terminal_session
from jaxal.records import record_round
from jaxal.round import Round, over_seeds
from jaxal.state import LabeledArrays

HUMAN_ORACLES = ("human", "terminal")


def _status(record: dict) -> str:
  return (f"labels {record['labels']}, interactions {record['interactions']}, validation accuracy "
          f"{record['val_accuracy']:.3f} (test {record['test_accuracy']:.3f})")


def _write_question(workdir: str, r: int, rounds: int, q: Query, record: dict,
                    images: np.ndarray, train_index: np.ndarray,
                    classes: ClassNames) -> tuple[list[Item], list[Item]]:
  """Writes round r's pictures and blank CSVs (an existing CSV is kept: it may hold answers).
  Returns the image and cluster items."""
  rdir = round_dir(workdir, r)
  os.makedirs(rdir, exist_ok=True)
  status = _status(record)
  indices = [int(i) for i in np.asarray(q.indices) if i >= 0]
  image_items = [Item("image", int(train_index[i]),
                      os.path.join(rdir, "images", f"{int(train_index[i])}.png")) for i in indices]
  for i, it in zip(indices, image_items):
    _save_png(display_image(images[i], 160), it.picture)
  if image_items:
    tags = [f"{n + 1}. #{it.key}" for n, it in enumerate(image_items)]
    contact_sheet(images[indices], tags, os.path.join(rdir, "query.png"), title=[
        f"round {r}/{rounds}: {len(indices)} images; labels.csv lists them in this order",
        f"classes: {classes.listing()}", status])
  cluster_items = []
  assignment = np.asarray(q.assignment)
  for c, size, members, proposed in zip(np.asarray(q.clusters), np.asarray(q.sizes),
                                        np.asarray(q.members), np.asarray(q.proposed)):
    if c < 0:
      continue
    shown = [int(m) for m in members if m >= 0]
    picture = os.path.join(rdir, "clusters", f"{int(c):03d}.png")
    cluster_items.append(Item("cluster", int(c), picture, int(proposed), int(size), len(shown)))
    more = f", {len(shown)} shown (a random sample)" if len(shown) < size else ""
    contact_sheet(images[shown], [f"#{int(train_index[m])}" for m in shown], picture, title=[
        f"round {r}, cluster {int(c)}: {int(size)} items{more}",
        f"proposed class: {classes.show(int(proposed))} (the model's most frequent prediction)",
        "answer: accept, another class, or decline"], cell=64, columns=8, tag_size=11)
    everyone = np.flatnonzero(assignment == c)
    reporting.write_atomic(picture[:-4] + ".txt",
                           " ".join(str(int(train_index[m])) for m in everyone) + "\n")
  for name, items in (("labels.csv", image_items), ("clusters.csv", cluster_items)):
    path = os.path.join(rdir, name)
    if items and not os.path.exists(path):
      write_answers(path, items, [None] * len(items), classes,
                    _csv_header(items[0].kind, r, rounds, classes))
  return image_items, cluster_items




def _write_unsure(workdir: str, records: Sequence[dict]) -> None:
  rows = [["index", "round"]] + [[i, row["round"]] for rec in records for row in rec["rounds"]
                                 for i in row.get("unsure", [])]
  if len(rows) > 1 or os.path.exists(os.path.join(workdir, UNSURE_FILE)):
    reporting.write_atomic(os.path.join(workdir, UNSURE_FILE), _csv_text(rows))


class _Programs:
  """The compiled parts of a person's round, over a leading seed axis of 1 (the checkpoint layout):
  train + evaluate + ask_query, tell_query, and the final train + evaluate."""

  def __init__(self, round_fn: Round, seed_batching: str):
    def train_ask(state, pool, test):
      state, metrics = round_fn.train_and_evaluate(state, pool, test)
      query = round_fn.ask_query(state, pool)
      return state, {**metrics, "selected": query.indices}, query
    self.train_ask = jax.jit(over_seeds(train_ask, seed_batching))
    self.tell = jax.jit(jax.vmap(tell_query))
    self.final = jax.jit(over_seeds(round_fn.train_and_evaluate, seed_batching))


def run_human(round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None, seed: int,
              split: Splits, *, images: np.ndarray,
              class_names: Sequence[str], train_index: np.ndarray, workdir: str,
              mode: str = "human", keep: int = 2, seed_batching: str = "auto",
              log: Callable[[str], None] = print, stdin: TextIO | None = None,
              stdout: TextIO | None = None) -> tuple[list[dict], str | None]:
  """One strategy and one seed with a person as the oracle, resumed from the workdir.

  Every round trains and asks (compiled), writes the question's files, gets the answers (from the
  CSVs with `mode="human"`, from `stdin` with `mode="terminal"`), tells the state and checkpoints
  it. With "human", a round whose CSV is not filled in yet stops the run.

  Args:
    images: uint8 [N, H, W, C] the pool's raw images (what the person sees).
    class_names: the C class names; train_index: int [N] dataset index of every pool item (the
      numbers on the pictures and in the CSVs).
    keep: checkpoints kept (orbax `max_to_keep`); one is written after every round.
  Returns:
    (records of the seed in `jaxal.driver.run`'s format, plus "skipped" and "unsure" dataset indices per
    round; None when all rounds are done, else the message that says what the person does next).
  Raises:
    LabelFileError for a malformed CSV (nothing is consumed).
  """
  if mode not in HUMAN_ORACLES:
    raise ValueError(f"run_human: mode must be one of {', '.join(HUMAN_ORACLES)}, got {mode!r}.")
  stdin = stdin or sys.stdin
  stdout = stdout or sys.stdout
  classes = ClassNames(tuple(class_names))
  train_index = np.asarray(train_index)
  y_np = np.asarray(pool.y)
  rounds = round_fn.budget.rounds
  fresh = round_fn.init_states([seed], [split], pool)
  progs = _Programs(round_fn, seed_batching)
  name = round_fn.name
  ckpt = checkpointing.StrategyCheckpoints(workdir, name, rounds, every=1, keep=keep, log=log)
  try:
    found = ckpt.restore_latest(fresh, [seed])
    if found is None:
      step, states, records = 0, fresh, [{"seed": int(seed), "rounds": []}]
    else:
      step, states, records, complete = found
      if complete:
        log(f"[{name}] complete in checkpoint step {step}; nothing to ask")
        return records, None
      log(f"[{name}] resuming from checkpoint step {step} (rounds 0..{step - 1} answered)")
    _drop_pending_before(workdir, step)
    for r in range(step, rounds + 1):
      if r == rounds:
        t0 = time.perf_counter()
        states, metrics = progs.final(states, pool, test)
        record_round(records, r, jax.device_get(metrics), train_index,
                       time.perf_counter() - t0)
        ckpt.save(r + 1, states, records)
        log(f"[{name}] round {r:>3}/{rounds}  final: {_status(records[0]['rounds'][-1])}")
        return records, None
      p = _load_pending(workdir, r, states)
      if p is None:
        t0 = time.perf_counter()
        trained, metrics, query = progs.train_ask(states, pool, test)
        scratch = [{"seed": int(seed), "rounds": []}]
        record_round(scratch, r, jax.device_get(metrics), train_index,
                       time.perf_counter() - t0)
        record = scratch[0]["rounds"][0]
        q0 = jax.tree.map(lambda a: np.asarray(a)[0], query)
        imgs, clus = _write_question(workdir, r, rounds, q0, record, images, train_index,
                                     classes)
        p = Pending(r, trained, query, record, imgs, clus)
        _save_pending(workdir, p, name)
      asks = [f"{len(its)} {what}" for its, what in ((p.images, "images"),
                                                      (p.clusters, "clusters")) if its]
      log(f"[{name}] round {r:>3}/{rounds}  asks {' and '.join(asks) or 'nothing'}; so far: "
          f"{_status(p.record)}")
      answers = _get_answers(workdir, p, rounds, classes, mode, stdin, stdout)
      if isinstance(answers, str):
        return records, answers
      states = _tell(progs, p, answers, records, train_index, y_np)
      ckpt.save(r + 1, states, records)
      _write_unsure(workdir, records)
      shutil.rmtree(pending_dir(workdir, r), ignore_errors=True)
    raise AssertionError("unreachable")
  finally:
    ckpt.close()


def _get_answers(workdir: str, p: Pending, rounds: int, classes: ClassNames, mode: str,
                 stdin: TextIO, stdout: TextIO):
  """The answers of round `p.round` as (image codes, cluster codes), or the message to show when
  the run stops to wait for them."""
  rdir = round_dir(workdir, p.round)
  files = [(os.path.join(rdir, "labels.csv"), p.images), (os.path.join(rdir, "clusters.csv"),
                                                          p.clusters)]
  got = []
  for path, items in files:
    if not items:
      got.append(([], []))
      continue
    if not os.path.exists(path):  # deleted by hand: write a blank one again
      write_answers(path, items, [None] * len(items), classes,
                    _csv_header(items[0].kind, p.round, rounds, classes))
    got.append(read_answers(path, items, classes))
  (img_ans, img_lines), (clu_ans, clu_lines) = got
  if mode == "terminal":
    items = list(p.images) + list(p.clusters)
    answers = list(img_ans) + list(clu_ans)
    n = len(p.images)

    def save(a):
      for (path, its), part in ((files[0], a[:n]), (files[1], a[n:])):
        if its:
          write_answers(path, its, part, classes,
                        _csv_header(its[0].kind, p.round, rounds, classes))

    lines = [f"round {p.round}/{rounds}: {_status(p.record)}",
             f"pictures: {rdir}" + (f" (all {n} images: {os.path.join(rdir, 'query.png')})"
                                    if n else ""),
             f"classes: {classes.listing()}",
             "keys: " + ("a class number or name, s skip, ? unsure; " if p.images else "")
             + ("clusters: Enter/a accept, a class, d decline; " if p.clusters else "")
             + "u undo, q save and quit"]
    if not terminal_session(items, answers, classes, save, stdin, stdout, header=lines):
      return f"round {p.round}/{rounds}: answers saved in {rdir}; run the same command to go on."
    return answers[:n], answers[n:]
  open_lines = [(path, [ln for a, ln in zip(ans, lines) if a is None], len(ans))
                for (path, _), (ans, lines) in zip(files, got) if ans]
  waiting = [(path, blank, total) for path, blank, total in open_lines if blank]
  if not waiting:
    return img_ans, clu_ans
  if all(len(blank) == total for _, blank, total in waiting) and len(waiting) == len(open_lines):
    parts = [f"round {p.round}/{rounds} waits for your answers ({_status(p.record)}):"]
    if p.images:
      parts.append(f"  look at  {os.path.join(rdir, 'query.png')} ({len(p.images)} images, each "
                   "tagged with its index; one PNG each in images/)")
      parts.append(f"  fill in  {files[0][0]}: the label column, a class name or number, skip "
                   "or unsure")
    if p.clusters:
      parts.append(f"  look at  {os.path.join(rdir, 'clusters')}/*.png ({len(p.clusters)} "
                   "clusters, each with the class the model proposes)")
      parts.append(f"  fill in  {files[1][0]}: the answer column, accept, another class or "
                   "decline")
    parts.append(f"  classes  {classes.listing()}")
    parts.append("then run the same command again.")
    return "\n".join(parts)
  parts = [f"{path}: {len(blank)} of {total} lines have no answer yet (line"
           f"{'s' if len(blank) > 1 else ''} {', '.join(map(str, blank))}); nothing was used."
           for path, blank, total in waiting]
  return "\n".join(parts + ["fill them in, then run the same command again."])


def _tell(progs: _Programs, p: Pending, answers, records: list[dict], train_index: np.ndarray,
          y: np.ndarray):
  """Tells the state the answers and appends the round's record (with skipped / unsure lists and,
  for clusters, the statistics `annotation.cluster_round` reports). Returns the next states."""
  img_ans, clu_ans = answers
  q = jax.tree.map(lambda a: np.asarray(a)[0], p.query)
  valid = [int(i) for i in q.indices if i >= 0]
  image_codes = np.full(q.indices.shape, SKIP, np.int32)
  image_codes[np.asarray(q.indices) >= 0] = np.asarray(img_ans, np.int32).reshape(-1)
  cluster_codes = np.full(q.clusters.shape, DECLINE, np.int32)
  cluster_codes[np.asarray(q.clusters) >= 0] = np.asarray(clu_ans, np.int32).reshape(-1)
  states, by_cluster = progs.tell(p.states, p.query, image_codes[None], cluster_codes[None])
  record = dict(p.record)
  record["skipped"] = [int(train_index[i]) for i, a in zip(valid, img_ans) if a == SKIP]
  record["unsure"] = [int(train_index[i]) for i, a in zip(valid, img_ans) if a == UNSURE]
  if q.clusters.shape[0]:
    newly = np.asarray(by_cluster)[0]
    labels = np.asarray(states.labels)[0]
    n_new = int(newly.sum())
    accuracy = (np.float32(np.sum(newly & (labels == y))) / np.float32(max(n_new, 1))
                if n_new else None)
    reviewed = np.asarray(q.clusters) >= 0
    record.update({"cluster_labeled": n_new,
                   "cluster_label_accuracy": None if accuracy is None else float(accuracy),
                   "clusters_shown": int(reviewed.sum()),
                   "clusters_accepted": int(np.sum(reviewed & (cluster_codes >= 0)))})
  records[0]["rounds"].append(record)
  return states
