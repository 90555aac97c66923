"""The answer files of a person's round: class names, the items asked, labels.csv / clusters.csv.

A label is a class name or number, `skip` or `unsure`; a cluster's answer is `accept`, another
class or `decline`. Column order, extra columns, `;` separators and a spreadsheet's byte-order mark
are accepted; a bad file raises `LabelFileError` naming the file and line, and nothing is used.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
from typing import Any, Sequence

from jaxal import reporting
from jaxal.annotation import DECLINE, SKIP, UNSURE

SKIP_WORDS = ("skip",)
UNSURE_WORDS = ("unsure",)


class LabelFileError(ValueError):
  """A labels.csv or clusters.csv that cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class ClassNames:
  """The classes a person may answer with, by name or by number.

  Numbers are accepted unless a class name is a number other than its own (say classes
  ("3", "5", "8") after `--classes=3,5,8`): a person typing "2" or "3" could mean a name or a
  number, so only names are accepted then."""
  names: tuple[str, ...]

  @functools.cached_property
  def numbers_ok(self) -> bool:
    return not any(n.strip().isdigit() and int(n) != i for i, n in enumerate(self.names))

  def lookup(self, token: str) -> int | None:
    """The class `token` names (exact name, else a unique case-insensitive name, else a class
    number when numbers are accepted), or None."""
    token = token.strip()
    if token in self.names:
      return self.names.index(token)
    folded = [i for i, n in enumerate(self.names) if n.casefold() == token.casefold()]
    if len(folded) == 1:
      return folded[0]
    if self.numbers_ok and token.isdigit() and int(token) < len(self.names):
      return int(token)
    return None

  def listing(self) -> str:
    """'0 zero, 1 one, ...' (names only when numbers are not accepted)."""
    if self.numbers_ok:
      return ", ".join(f"{i} {n}" if n != str(i) else n for i, n in enumerate(self.names))
    return ", ".join(self.names)

  def accepted(self) -> str:
    """How to write a class, for messages."""
    if self.numbers_ok:
      return f"a class number 0-{len(self.names) - 1} or name ({self.listing()})"
    return f"a class name ({self.listing()}; numbers are not accepted: the names are numbers)"

  def show(self, c: int) -> str:
    """'3 (three)' or '3'."""
    return f"{c} ({self.names[c]})" if self.names[c] != str(c) else str(c)


def round_dir(workdir: str, r: int) -> str:
  """`<workdir>/round_NNN`."""
  return os.path.join(workdir, f"round_{r:03d}")


@dataclasses.dataclass
class Item:
  """One thing a person answers: an image (`key` = its dataset index) or a cluster (`key` = the
  cluster id, `size` its members, `shown` those in the montage). `picture` is the PNG to look at.
  `proposed` is the class the model proposes (-1: none yet) with probability `score` for an
  image; `heldout`: an image whose label is kept out of training to measure accuracy."""
  kind: str
  key: int
  picture: str
  proposed: int = -1
  size: int = 0
  shown: int = 0
  score: float = 0.0
  heldout: bool = False


def _csv_text(rows: Sequence[Sequence[Any]]) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  for row in rows:
    writer.writerow(row)
  return buf.getvalue()


def _answer_text(kind: str, code: int | None, classes: ClassNames) -> str:
  if code is None:
    return ""
  if code >= 0:
    return classes.names[code]
  if kind == "cluster":
    return "decline"
  return "skip" if code == SKIP else "unsure"


def write_answers(path: str, items: Sequence[Item], answers: Sequence[int | None],
                  classes: ClassNames, header: Sequence[str]) -> None:
  """Writes labels.csv (images) or clusters.csv (clusters) with `answers` (None = blank),
  atomically. `header` lines go first as `#` comments."""
  rdir = os.path.dirname(path)
  if items and items[0].kind == "cluster":
    rows = [["cluster", "size", "proposed", "answer", "montage"]]
    rows += [[it.key, it.size, classes.names[it.proposed], _answer_text("cluster", a, classes),
              os.path.relpath(it.picture, rdir)] for it, a in zip(items, answers)]
  else:
    rows = [["index", "label", "image"]]
    rows += [[it.key, _answer_text("image", a, classes), os.path.relpath(it.picture, rdir)]
             for it, a in zip(items, answers)]
  comments = "".join(f"# {' '.join(line.split())}\n" for line in header)
  reporting.write_atomic(path, comments + _csv_text(rows))


def _parse_answer(kind: str, token: str, classes: ClassNames, proposed: int) -> int | None:
  """The code for a CSV cell (None = blank); raises ValueError with the accepted values."""
  token = token.strip()
  if not token:
    return None
  low = token.casefold()
  if kind == "cluster":
    if low == "accept":
      return proposed
    if low == "decline":
      return DECLINE
  else:
    if low in SKIP_WORDS:
      return SKIP
    if low in UNSURE_WORDS:
      return UNSURE
  c = classes.lookup(token)
  if c is None:
    extra = "accept, decline" if kind == "cluster" else "skip, unsure"
    raise ValueError(f"unknown label {token!r}; accepted: {classes.accepted()}, {extra}, or blank "
                     "(not answered yet)")
  return c


def read_answers(path: str, items: Sequence[Item], classes: ClassNames,
                 ) -> tuple[list[int | None], list[int]]:
  """Reads a round's labels.csv or clusters.csv against the pending question's `items`.

  Lines whose first cell starts with `#` and blank lines are ignored; the header names the columns
  (`index` and `label`, or `cluster` and `answer`; others are ignored, in any order); `,`, `;` or
  tab separate cells. Returns (answers in `items` order, None where blank; the file line of each
  item). Raises LabelFileError naming the file and line for an unknown index, a duplicate, a
  missing item, an unknown label or a malformed line; nothing is changed then."""
  kind = items[0].kind if items else "image"
  key_col, answer_col = ("cluster", "answer") if kind == "cluster" else ("index", "label")
  what = "cluster" if kind == "cluster" else "image index"
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      text = f.read()
  except OSError as e:
    raise LabelFileError(f"{path}: cannot be read ({e.strerror or e}).") from e
  lines = text.splitlines()
  first = next((ln for ln in lines if ln.strip() and not ln.lstrip().lstrip('"').startswith("#")),
               "")
  delimiter = "," if "," in first or not (";" in first or "\t" in first) else (
      ";" if ";" in first else "\t")
  reader = csv.reader(io.StringIO(text), delimiter=delimiter)
  position = {it.key: i for i, it in enumerate(items)}
  answers: list[int | None] = [None] * len(items)
  line_of = [0] * len(items)
  columns = None
  for row in reader:
    line = reader.line_num
    where = f"{path} line {line}"
    if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
      continue
    if columns is None:
      names = [c.strip().casefold() for c in row]
      if key_col not in names or answer_col not in names:
        raise LabelFileError(f"{where}: the header must name the columns {key_col!r} and "
                             f"{answer_col!r}, got {','.join(row)!r}.")
      columns = (names.index(key_col), names.index(answer_col))
      continue
    ki, ai = columns
    if len(row) <= ki:
      raise LabelFileError(f"{where}: no {key_col} cell in {delimiter.join(row)!r}.")
    key_text = row[ki].strip()
    if not key_text.lstrip("-").isdigit():
      raise LabelFileError(f"{where}: {key_col} {key_text!r} is not a whole number.")
    key = int(key_text)
    if key not in position:
      raise LabelFileError(f"{where}: {what} {key} was not asked in this round; the round asks "
                           f"{', '.join(str(it.key) for it in items)}.")
    i = position[key]
    if line_of[i]:
      raise LabelFileError(f"{where}: {what} {key} is listed twice (also on line {line_of[i]}).")
    line_of[i] = line
    token = row[ai] if len(row) > ai else ""
    try:
      answers[i] = _parse_answer(kind, token, classes, items[i].proposed)
    except ValueError as e:
      raise LabelFileError(f"{where}: {e}.") from e
  if columns is None:
    raise LabelFileError(f"{path}: no header line ({key_col},{answer_col},...) and no answers.")
  missing = [it.key for it, ln in zip(items, line_of) if not ln]
  if missing:
    raise LabelFileError(f"{path}: {len(missing)} {what}(s) of this round have no line: "
                         f"{', '.join(map(str, missing))}; add a line for each (or delete the file "
                         "and run again to get a fresh one).")
  return answers, line_of

def _csv_header(kind: str, r: int, rounds: int, classes: ClassNames) -> list[str]:
  """The comment lines at the top of labels.csv / clusters.csv."""
  doc = ("answer: accept (label every member with the proposed class), another class name or "
         "number, or decline" if kind == "cluster" else
         "label: a class name or number, skip (not labeled; may be asked again) or unsure (not "
         "labeled; not asked again; listed in unsure.csv)")
  return [f"jaxal round {r}/{rounds}: fill in every line (--oracle=human: then run the same "
          "command again; --oracle=terminal asks and writes them here).", doc,
          f"classes: {classes.listing()}"]
