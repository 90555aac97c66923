"""A person's rounds from files or a terminal: `run_human` opens each round's question
(`jaxal.human.person.PersonRun`: trained and asked once, its pictures and CSVs written), gets the
answers (the CSVs, or the terminal), tells the state and checkpoints. The round function is the same
value the simulated driver runs; only the oracle differs. The web page (`jaxal.human.web`) drives
the same `PersonRun`."""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence, TextIO

import numpy as np

from jaxal.data.splits import Splits
from jaxal.human.answers import (ClassNames, _csv_header, read_answers, round_dir,
                                 write_answers)
from jaxal.human.pending import Pending
from jaxal.human.person import PersonRun
from jaxal.human.question import status_line
from jaxal.human.terminal import terminal_session
from jaxal.round import Round
from jaxal.state import LabeledArrays

HUMAN_ORACLES = ("human", "terminal")


def run_human(round_fn: Round, pool: LabeledArrays, test: LabeledArrays | None, seed: int,
              split: Splits, *, images: np.ndarray,
              class_names: Sequence[str], train_index: np.ndarray, workdir: str,
              mode: str = "human", keep: int = 2, seed_batching: str = "auto",
              log: Callable[[str], None] = print, stdin: TextIO | None = None,
              stdout: TextIO | None = None, holdout: float = 0.0, cold_start: str = "typiclust",
              ) -> tuple[list[dict], str | None]:
  """One strategy and one seed with a person as the oracle, resumed from the workdir.

  Every round trains and asks (compiled), writes the question's files, gets the answers (from the
  CSVs with `mode="human"`, from `stdin` with `mode="terminal"`), tells the state and checkpoints
  it. With "human", a round whose CSV is not filled in yet stops the run.

  Args:
    images: uint8 [N, H, W, C] the pool's raw images (what the person sees).
    class_names: the C class names; train_index: int [N] dataset index of every pool item (the
      numbers on the pictures and in the CSVs).
    keep: checkpoints kept (orbax `max_to_keep`); one is written after every round.
    holdout, cold_start: for a pool without labels (`PersonRun`).
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
  person = PersonRun(round_fn, pool, test, seed, split, images=images, class_names=class_names,
                     train_index=train_index, workdir=workdir, keep=keep,
                     seed_batching=seed_batching, log=log, holdout=holdout, cold_start=cold_start)
  name, rounds = round_fn.name, round_fn.budget.rounds
  try:
    if person.complete:
      log(f"[{name}] complete in checkpoint step {person.step}; nothing to ask")
      return person.records, None
    while True:
      p = person.question()
      if p is None:
        return person.records, None
      asks = [f"{len(its)} {what}" for its, what in ((p.images, "images"),
                                                      (p.clusters, "clusters")) if its]
      log(f"[{name}] round {p.round:>3}/{rounds}  asks {' and '.join(asks) or 'nothing'}; so "
          f"far: {status_line(p.record)}")
      answers = _get_answers(workdir, p, rounds, person.classes, mode, stdin, stdout)
      if isinstance(answers, str):
        return person.records, answers
      person.tell(*answers)
  finally:
    person.close()


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

    lines = [f"round {p.round}/{rounds}: {status_line(p.record)}",
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
    parts = [f"round {p.round}/{rounds} waits for your answers ({status_line(p.record)}):"]
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
