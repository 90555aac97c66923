"""The labeling page's state: a `PersonRun` behind one lock, the round's CSV files as the record of
every answer, and one background worker that tells the state and trains the next round.

Every answer is written at once to the round's labels.csv / clusters.csv (read, changed, written
atomically under the lock), the same files `--oracle=human` and `--oracle=terminal` use, so a
person can switch between them mid-round, and killing the server loses at most a request in flight.
Answers are checked against the open question: a wrong round, an unknown item or an unknown class
raises `Refused` (the page shows its message; nothing is written).
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Any, Callable

import numpy as np

from jaxal.annotation import DECLINE, SKIP, UNSURE
from jaxal.human import labelstudio
from jaxal.human.answers import (Item, LabelFileError, _csv_header, read_answers, round_dir,
                                 write_answers)
from jaxal.human.person import PersonRun
from jaxal.human.question import status_line


class Refused(ValueError):
  """A request that does not fit the open question (HTTP 4xx); the message says why."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class LabelingService:
  """What the page shows and does. `on_round` is called (in the worker) after every told round
  and when the run completes, to write results; `on_complete` once the run is complete."""

  def __init__(self, make_person: Callable[[], PersonRun], *, on_round: Callable[[], None],
               on_complete: Callable[[], None], log: Callable[[str], None] = print):
    self._make_person = make_person
    self._on_round, self._on_complete, self._log = on_round, on_complete, log
    self.lock = threading.RLock()
    self.person: PersonRun | None = None
    self.phase, self.phase_started, self.message = "starting", time.time(), ""
    self.last_seconds: float | None = None
    self.history: dict[int, list[tuple[str, int]]] = {}   # round -> answers in the order given
    self._worker: threading.Thread | None = None
    self.closed = threading.Event()

  # -- the worker ---------------------------------------------------------------------------------

  def start(self) -> None:
    """Opens the run and its first question in the background."""
    self._run_in_worker("opening the run and the round's question", self._open)

  def _run_in_worker(self, what: str, job: Callable[[], None]) -> None:
    with self.lock:
      self.phase, self.phase_started, self.message = "training", time.time(), what
    def work():
      t0 = time.perf_counter()
      try:
        job()
      except Exception as e:  # pylint: disable=broad-except  # shown on the page, and logged
        with self.lock:
          self.phase, self.message = "error", f"{type(e).__name__}: {e}"
        self._log(f"labeling page: {type(e).__name__}: {e}")
        if os.environ.get("JAXAL_DEBUG"):
          traceback.print_exc()
        return
      with self.lock:
        self.last_seconds = time.perf_counter() - t0
    self._worker = threading.Thread(target=work, name="jaxal-labeling", daemon=True)
    self._worker.start()

  def _open(self) -> None:
    if self.person is None:
      self.person = self._make_person()
    self._next_question()

  def _next_question(self) -> None:
    p = self.person
    q = p.question()
    if q is None:
      self._on_round()
      self._on_complete()
      with self.lock:
        self.phase, self.message = "done", "all rounds are answered"
      return
    self._ensure_files(q)
    with self.lock:
      self.phase, self.message = "asking", ""

  def _ensure_files(self, q) -> None:
    for name, items in self._files(q):
      if items and not os.path.exists(name):
        write_answers(name, items, [None] * len(items), self.person.classes,
                      _csv_header(items[0].kind, q.round, self.person.rounds,
                                  self.person.classes))

  def _files(self, q):
    rdir = round_dir(self.person.workdir, q.round)
    return [(os.path.join(rdir, "labels.csv"), q.images),
            (os.path.join(rdir, "clusters.csv"), q.clusters)]

  def wait(self, timeout: float | None = None) -> None:
    if self._worker is not None:
      self._worker.join(timeout)

  # -- answers -------------------------------------------------------------------------------------

  def _open_question(self, r: Any):
    if self.phase != "asking" or self.person is None or self.person.pending is None:
      raise Refused(f"no question is open now ({self.phase}: {self.message or 'wait'}).", 409)
    q = self.person.pending
    if not isinstance(r, int) or isinstance(r, bool) or r != q.round:
      raise Refused(f"round {r!r} is not the open round ({q.round}); reload the page.", 409)
    return q

  def _read(self, q) -> tuple[list, list]:
    out = []
    for path, items in self._files(q):
      if not items:
        out.append([])
        continue
      try:
        out.append(read_answers(path, items, self.person.classes)[0])
      except LabelFileError as e:
        raise Refused(f"the answers file cannot be read ({e}); fix or delete it.", 409) from e
    return out[0], out[1]

  def _write(self, q, images: list, clusters: list) -> None:
    for (path, items), answers in zip(self._files(q), (images, clusters)):
      if items:
        write_answers(path, items, answers, self.person.classes,
                      _csv_header(items[0].kind, q.round, self.person.rounds,
                                  self.person.classes))

  def _code(self, item: Item, answer: Any) -> int:
    classes = self.person.classes
    if not isinstance(answer, str) or not answer.strip():
      raise Refused(f"an answer must be a non-empty string, got {answer!r}.")
    low = answer.strip().casefold()
    if item.kind == "image" and low in ("skip", "unsure"):
      return SKIP if low == "skip" else UNSURE
    if item.kind == "cluster" and low in ("accept", "decline"):
      return item.proposed if low == "accept" else DECLINE
    code = classes.names.index(answer) if answer in classes.names else None
    if code is None:
      words = "skip, unsure" if item.kind == "image" else "accept, decline"
      raise Refused(f"unknown answer {answer!r}; accepted: the class names "
                    f"({', '.join(classes.names)}), {words}.")
    return code

  def answer(self, r: Any, kind: Any, slot: Any, answer: Any) -> dict:
    """Records the answer to item `slot` of the open round's images or clusters."""
    with self.lock:
      q = self._open_question(r)
      items = {"image": q.images, "cluster": q.clusters}.get(kind)
      if items is None:
        raise Refused(f"kind must be 'image' or 'cluster', got {kind!r}.")
      if not isinstance(slot, int) or isinstance(slot, bool) or not 0 <= slot < len(items):
        raise Refused(f"{kind} {slot!r} is not in this round (0..{len(items) - 1}).", 404)
      code = self._code(items[slot], answer)
      images, clusters = self._read(q)
      (images if kind == "image" else clusters)[slot] = code
      self._write(q, images, clusters)
      self.history.setdefault(q.round, []).append((kind, slot))
      return self.snapshot()

  def undo(self, r: Any) -> dict:
    """Clears the answer given last in this round (by this page; else the last answered item)."""
    with self.lock:
      q = self._open_question(r)
      images, clusters = self._read(q)
      stack = self.history.get(q.round, [])
      while stack:
        kind, slot = stack.pop()
        target = images if kind == "image" else clusters
        if target[slot] is not None:
          target[slot] = None
          break
      else:
        answered = [("cluster", i) for i, a in enumerate(clusters) if a is not None][::-1] + [
            ("image", i) for i, a in enumerate(images) if a is not None][::-1]
        if not answered:
          raise Refused("nothing to undo in this round (earlier rounds are saved).", 409)
        kind, slot = answered[0]
        (images if kind == "image" else clusters)[slot] = None
      self._write(q, images, clusters)
      return self.snapshot()

  def finish(self, r: Any) -> dict:
    """Tells the state the round's answers (all given) and trains the next round in the
    background."""
    with self.lock:
      q = self._open_question(r)
      images, clusters = self._read(q)
      missing = sum(a is None for a in images + clusters)
      if missing:
        raise Refused(f"{missing} item(s) of round {q.round} have no answer yet.", 409)
      def job():
        self.person.tell(images, clusters)
        self._on_round()
        self._next_question()
      self._run_in_worker(f"training the network on your labels and choosing round "
                          f"{q.round + 1}'s images", job)
      return self.snapshot()

  def import_labelstudio(self, path: str) -> int:
    """Writes the answers of a Label Studio export into the open round's labels.csv (answers
    already given are kept). Returns how many were filled in."""
    with self.lock:
      q = self._open_question(self.person.pending.round if self.person and self.person.pending
                              else None)
      got = labelstudio.read_export(path, q.images, self.person.classes)
      images, clusters = self._read(q)
      filled = 0
      for i, a in enumerate(got):
        if a is not None and images[i] is None:
          images[i], filled = a, filled + 1
      self._write(q, images, clusters)
      return filled

  # -- what the page shows -------------------------------------------------------------------------

  def _name(self, code: int | None, kind: str) -> str | None:
    if code is None:
      return None
    if code >= 0:
      return self.person.classes.names[code]
    if kind == "cluster":
      return "decline"
    return "skip" if code == SKIP else "unsure"

  def snapshot(self) -> dict:
    """Everything the page shows, as JSON."""
    with self.lock:
      out = {"phase": self.phase, "message": self.message,
             "seconds": round(time.time() - self.phase_started, 1),
             "last_seconds": None if self.last_seconds is None else round(self.last_seconds, 1)}
      p = self.person
      if p is None:
        return out
      out.update(strategy=p.name, rounds=p.rounds, classes=list(p.classes.names),
                 holdout=p.holdout, round=p.step, complete=p.complete)
      rows = list(p.records[0]["rounds"])
      if p.pending is not None and "train_loss" in p.pending.record:
        rows.append(p.pending.record)   # the open round's network, trained on every label so far
      out["history"] = [{k: row.get(k) for k in (
          "round", "labels", "interactions", "heldout_accuracy", "heldout_size", "val_accuracy",
          "test_accuracy")} for row in rows]
      labels = p.labels()
      counts = np.bincount([c for _, c in labels], minlength=len(p.classes.names))
      out["counts"] = {n: int(c) for n, c in zip(p.classes.names, counts)}
      out["labeled"] = len(labels)
      out["interactions"] = int(np.asarray(p.states.interactions).reshape(-1)[0])
      q = p.pending
      if self.phase == "asking" and q is not None:
        try:
          images, clusters = self._read(q)
        except Refused as e:
          out["phase"], out["message"] = "error", str(e)
          return out
        out["status"] = status_line(q.record)
        out["round"] = q.round
        out["images"] = [{"slot": i, "index": it.key, "answer": self._name(a, "image"),
                          "proposed": None if it.proposed < 0 else p.classes.names[it.proposed],
                          "score": round(it.score, 3) if it.proposed >= 0 else None,
                          "heldout": it.heldout} for i, (it, a) in enumerate(zip(q.images,
                                                                                 images))]
        out["clusters"] = [{"slot": i, "cluster": it.key, "size": it.size, "shown": it.shown,
                            "proposed": p.classes.names[it.proposed],
                            "answer": self._name(a, "cluster")}
                           for i, (it, a) in enumerate(zip(q.clusters, clusters))]
        out["answered"] = sum(a is not None for a in images + clusters)
        out["total"] = len(images) + len(clusters)
      return out

  def item(self, r: Any, kind: str, slot: Any) -> Item:
    """The open round's item `slot` (for its picture): only what the question holds."""
    with self.lock:
      q = self._open_question(r)
      items = q.images if kind == "image" else q.clusters
      if not isinstance(slot, int) or not 0 <= slot < len(items):
        raise Refused(f"{kind} {slot!r} is not in this round.", 404)
      return items[slot]
