"""A person as the oracle. Each round's question (`loop.ask_query`) goes out as pictures and CSV
files in `<workdir>/round_NNN/`; the answers come back from those files (`--oracle=human`, for a
person with a spreadsheet or a team with a labeling tool) or from a terminal session
(`--oracle=terminal`), and go into the state through `loop.tell_query`, the same path as the
simulated oracle's answers.

A round's files:

  round_NNN/query.png          the K asked images, in the order of labels.csv, each tagged with
                               its dataset index (the `selected` numbering of results.json)
  round_NNN/images/<index>.png one enlarged PNG per asked image (for a labeling tool or a viewer)
  round_NNN/labels.csv         index,label,image: the label column is blank until answered with a
                               class name or number, `skip` or `unsure`
  round_NNN/clusters/<c>.png   cluster strategies: a montage of up to 64 members of cluster c,
                               tagged, with the class the model proposes; <c>.txt lists all members
  round_NNN/clusters.csv       cluster,size,proposed,answer,montage: answer `accept`, another class,
                               or `decline`

Answers: a class labels the image; `skip` leaves it unlabeled, back in the pool (a later round may
ask it again); `unsure` leaves it unlabeled and takes it out of the pool, so it is not asked again,
and lists it in `<workdir>/unsure.csv` for the person to revisit. Interactions: one per image
labeled, one per cluster reviewed (declined ones too).

State between invocations: the orbax checkpoint of the round's input (`jaxal.checkpointing`,
`<workdir>/checkpoints/<strategy>/<round>/`) and the pending question: the trained state and the
`Query`, saved with orbax under `<workdir>/checkpoints/pending/round_NNN/` with a JSON record, so
answers are matched to the indices that were asked and a re-run does not train again. The terminal
writes every answer into labels.csv / clusters.csv as it is given, so quitting at any point (`q`,
end of input, a closed window) loses nothing, and the two modes can take over from each other.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import math
import os
import shutil
import sys
import time
from typing import Any, Callable, Sequence, TextIO

import jax
import numpy as np

from jaxal import checkpointing, loop, reporting
from jaxal.data.splits import Splits
from jaxal.state import RoundConfig

ORACLES = ("simulated", "human", "terminal")
HUMAN_ORACLES = ("human", "terminal")
PENDING_DIR = os.path.join("checkpoints", "pending")
UNSURE_FILE = "unsure.csv"
# The records of a human run have the format of loop.run's, made by the same function.
_append_record = loop._record  # pylint: disable=protected-access
SKIP_WORDS = ("skip",)
UNSURE_WORDS = ("unsure",)


class LabelFileError(ValueError):
  """A labels.csv or clusters.csv that cannot be used; the message names the file and line."""


# --------------------------------------------------------------------------------------------------
# class names and answers


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


# --------------------------------------------------------------------------------------------------
# pictures


def _font(size: int):
  from PIL import ImageFont  # pylint: disable=import-outside-toplevel
  try:
    from matplotlib import font_manager  # pylint: disable=import-outside-toplevel
    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
  except Exception:  # pylint: disable=broad-except  # no matplotlib / FreeType: PIL's own font
    return ImageFont.load_default(size)


def display_image(image: np.ndarray, cell: int):
  """A uint8 image [H, W, C] as a PIL image whose longer side is about `cell` pixels: small images
  are enlarged by a whole factor with nearest neighbour (sharp pixels), large ones reduced. One
  channel shows as grey, three as RGB; of other counts the first (or first three) channels show."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3:
    raise ValueError(f"display_image: expected uint8 [H, W, C], got {image.dtype} {image.shape}.")
  c = image.shape[-1]
  pil = Image.fromarray(image[..., :3] if c >= 3 else image[..., 0],
                        mode="RGB" if c >= 3 else "L")
  side = max(image.shape[:2])
  if side <= cell:
    factor = max(1, cell // side)
    return pil.resize((pil.width * factor, pil.height * factor), Image.NEAREST)
  scale = cell / side
  return pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                    Image.LANCZOS)


def contact_sheet(images: np.ndarray, tags: Sequence[str], path: str,
                  title: Sequence[str] = (), cell: int = 96, columns: int | None = None,
                  tag_size: int = 14) -> str:
  """Writes a grid of `images` (uint8 [K, H, W, C]), each framed with its tag below, under the
  `title` lines, to the PNG `path` (atomically). Returns `path`."""
  from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel
  if len(images) != len(tags):
    raise ValueError(f"contact_sheet: {len(images)} images but {len(tags)} tags.")
  k = max(1, len(images))
  columns = columns or min(k, max(1, math.ceil(math.sqrt(2 * k))))
  rows = math.ceil(k / columns)
  tiles = [display_image(im, cell) for im in images]
  tile_w = max([t.width for t in tiles] + [cell])
  tile_h = max([t.height for t in tiles] + [1])
  tag_font, title_font = _font(tag_size), _font(15)
  probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  tag_w = max([probe.textlength(t, font=tag_font) for t in tags] + [0])
  cell_w = int(max(tile_w, tag_w)) + 12
  cell_h = tile_h + tag_size + 14
  title_h = (len(title) * 20 + 8) if title else 0
  title_w = max([probe.textlength(t, font=title_font) for t in title] + [0])
  width = max(columns * cell_w + 8, int(title_w) + 16)
  sheet = Image.new("RGB", (width, title_h + rows * cell_h + 8), "white")
  draw = ImageDraw.Draw(sheet)
  for i, line in enumerate(title):
    draw.text((8, 6 + 20 * i), line, fill="black", font=title_font)
  for i, (tile, tag) in enumerate(zip(tiles, tags)):
    x0 = 4 + (i % columns) * cell_w
    y0 = title_h + 4 + (i // columns) * cell_h
    ix = x0 + (cell_w - tile.width) // 2
    sheet.paste(tile.convert("RGB"), (ix, y0 + 2))
    draw.rectangle((ix - 1, y0 + 1, ix + tile.width, y0 + 2 + tile.height), outline="#888888")
    tw = draw.textlength(tag, font=tag_font)
    draw.text((x0 + (cell_w - tw) / 2, y0 + tile_h + 5), tag, fill="black", font=tag_font)
  return _save_png(sheet, path)


def _save_png(image, path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.png"
  image.save(tmp)
  os.replace(tmp, path)
  return path


# --------------------------------------------------------------------------------------------------
# the files of a round


def round_dir(workdir: str, r: int) -> str:
  """`<workdir>/round_NNN`."""
  return os.path.join(workdir, f"round_{r:03d}")


@dataclasses.dataclass
class Item:
  """One thing a person answers: an image (`key` = its dataset index) or a cluster (`key` = the
  cluster id, `proposed` the model's class, `size` its members, `shown` those in the montage).
  `picture` is the PNG to look at."""
  kind: str
  key: int
  picture: str
  proposed: int = -1
  size: int = 0
  shown: int = 0


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
  return "skip" if code == loop.SKIP else "unsure"


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
      return loop.DECLINE
  else:
    if low in SKIP_WORDS:
      return loop.SKIP
    if low in UNSURE_WORDS:
      return loop.UNSURE
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


# --------------------------------------------------------------------------------------------------
# the terminal


def terminal_session(items: Sequence[Item], answers: list[int | None], classes: ClassNames,
                     save: Callable[[list[int | None]], None], stdin: TextIO, stdout: TextIO,
                     header: Sequence[str] = ()) -> bool:
  """Asks `items` one by one on `stdout`, reading answers from `stdin`, starting at the first
  unanswered one. Every answer is passed to `save` at once.

  Keys: a class number or name; `s` skip, `?` unsure (images); Enter or `a` accept the proposed
  class, `d` decline (clusters); `u` undo (back one item); `q` save and quit. A wrong answer is
  re-asked with the accepted values. End of input and Ctrl-C count as `q`.
  Returns True when every item is answered and the person confirmed the round, False on quit."""
  def say(text=""):
    stdout.write(text + "\n")
    stdout.flush()

  def read(prompt):
    stdout.write(prompt)
    stdout.flush()
    try:
      line = stdin.readline()
    except KeyboardInterrupt:  # Ctrl-C: every answer is saved already; stop as with q
      say()
      return None
    return None if line == "" else line.strip()

  def accepted(item):
    if item.kind == "cluster":
      return (f"Enter or a to accept {classes.show(item.proposed)}, {classes.accepted()} to "
              "label the cluster with it, d decline, u undo, q save and quit")
    return f"{classes.accepted()}, s skip, ? unsure, u undo, q save and quit"

  def first_open(after=-1):
    later = [j for j in range(after + 1, len(items)) if answers[j] is None]
    earlier = [j for j in range(len(items)) if answers[j] is None]
    return (later or earlier or [len(items)])[0]

  for line in header:
    say(line)
  pos = first_open()
  n_img = sum(it.kind == "image" for it in items)
  while True:
    if pos >= len(items):
      line = read(f"all {len(items)} answered: Enter saves the round and goes on, u undoes the "
                  "last answer, q saves and quits> ")
      if line is None or line.casefold() in ("q", "quit"):
        say("saved; run the same command again to continue.")
        return False
      if line == "":
        return True
      if line.casefold() in ("u", "undo"):
        pos = len(items) - 1
        answers[pos] = None
        save(answers)
        continue
      say(f"{line!r}: accepted here are Enter, u, q.")
      continue
    item = items[pos]
    if item.kind == "image":
      say(f"[{pos + 1}/{n_img}] image #{item.key}: {item.picture}")
      line = read("label> ")
    else:
      j = pos - n_img
      more = f", {item.shown} shown" if item.shown < item.size else ""
      say(f"[cluster {j + 1}/{len(items) - n_img}] cluster {item.key}: {item.size} items{more}: "
          f"{item.picture}")
      say(f"  proposed class {classes.show(item.proposed)} (Enter/a accept, a class to relabel, "
          "d decline)")
      line = read("answer> ")
    if line is None or line.casefold() in ("q", "quit"):
      say("saved; run the same command again to continue at this "
          f"{'image' if item.kind == 'image' else 'cluster'}.")
      return False
    low = line.casefold()
    if low in ("u", "undo"):
      if pos == 0:
        say("nothing to undo in this round (earlier rounds are saved).")
        continue
      pos -= 1
      answers[pos] = None
      save(answers)
      continue
    code = None
    if item.kind == "image":
      if low in ("s",) + SKIP_WORDS:
        code = loop.SKIP
      elif low in ("?",) + UNSURE_WORDS:
        code = loop.UNSURE
    elif low in ("", "a", "accept"):
      code = item.proposed
    elif low in ("d", "decline"):
      code = loop.DECLINE
    if code is None and line:
      code = classes.lookup(line)
    if code is None:
      say(f"{line!r} is not an answer here; accepted: {accepted(item)}.")
      continue
    answers[pos] = code
    save(answers)
    pos = first_open(pos)


# --------------------------------------------------------------------------------------------------
# the pending question


@dataclasses.dataclass
class Pending:
  """A round that was asked and not yet told: the trained state [1, ...], its `Query` [1, ...],
  the record of its evaluation and the items shown to the person."""
  round: int
  states: Any
  query: loop.Query
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
    ckptr.save(os.path.join(path, "state"), p.states)
    ckptr.wait_until_finished()
    ckptr.close()
  # The query in .npz: orbax refuses zero-size arrays (a query without clusters has them).
  query = {f.name: np.asarray(getattr(p.query, f.name)) for f in dataclasses.fields(p.query)}
  np.savez(os.path.join(path, "query.npz"), **query)
  meta = {"round": p.round, "strategy": strategy, "record": p.record,
          "checksums": checkpointing.checksums({"states": p.states, "query": query}),
          "images": [dataclasses.asdict(it) for it in p.images],
          "clusters": [dataclasses.asdict(it) for it in p.clusters]}
  reporting.write_json_atomic(os.path.join(path, "pending.json"), meta)  # last: marks it complete


def _load_pending(workdir: str, r: int, like: Any) -> Pending | None:
  """The pending question of round `r`, or None. `like` gives the structure, shapes and dtypes of
  the states (the trained state has those of the round's input).
  A half-written one (no pending.json) is removed; a damaged one raises LabelFileError saying what
  to delete."""
  import json  # pylint: disable=import-outside-toplevel
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
      states = ckptr.restore(os.path.join(path, "state"),
                             jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
      ckptr.close()
    with np.load(os.path.join(path, "query.npz")) as f:
      query = {name: f[name] for name in f.files}
    tree = {"states": states, "query": query}
    if meta.get("round") != r or meta.get("checksums") != checkpointing.checksums(tree):
      raise ValueError("its round or checksums do not match")
  except Exception as e:  # orbax/tensorstore raise many types for damaged files
    raise LabelFileError(f"the saved question of round {r} in {path} cannot be used ({e}); delete "
                         "that folder and run again to ask the round again.") from e
  return Pending(round=r, states=states, query=loop.Query(**query), record=meta["record"],
                 images=[Item(**d) for d in meta["images"]],
                 clusters=[Item(**d) for d in meta["clusters"]])


def _drop_pending_before(workdir: str, r: int) -> None:
  """Removes pending questions of rounds before `r` (already told and checkpointed)."""
  root = os.path.join(os.path.abspath(workdir), PENDING_DIR)
  if not os.path.isdir(root):
    return
  for name in os.listdir(root):
    if name.startswith("round_") and name[6:].isdigit() and int(name[6:]) < r:
      shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def remove_rounds(workdir: str) -> None:
  """Deletes the round folders and unsure.csv of a run (for `--overwrite`)."""
  if not os.path.isdir(workdir):
    return
  for name in os.listdir(workdir):
    if name.startswith("round_") and name[6:].isdigit():
      shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  if os.path.exists(os.path.join(workdir, UNSURE_FILE)):
    os.remove(os.path.join(workdir, UNSURE_FILE))


# --------------------------------------------------------------------------------------------------
# the driver


def _status(record: dict) -> str:
  return (f"labels {record['labels']}, interactions {record['interactions']}, validation accuracy "
          f"{record['val_accuracy']:.3f} (test {record['test_accuracy']:.3f})")


def _write_question(workdir: str, r: int, rounds: int, q: loop.Query, record: dict,
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


def _csv_header(kind: str, r: int, rounds: int, classes: ClassNames) -> list[str]:
  """The comment lines at the top of labels.csv / clusters.csv."""
  doc = ("answer: accept (label every member with the proposed class), another class name or "
         "number, or decline" if kind == "cluster" else
         "label: a class name or number, skip (not labeled; may be asked again) or unsure (not "
         "labeled; not asked again; listed in unsure.csv)")
  return [f"jaxal round {r}/{rounds}: fill in every line (--oracle=human: then run the same "
          "command again; --oracle=terminal asks and writes them here).", doc,
          f"classes: {classes.listing()}"]


def _write_unsure(workdir: str, records: Sequence[dict]) -> None:
  rows = [["index", "round"]] + [[i, row["round"]] for rec in records for row in rec["rounds"]
                                 for i in row.get("unsure", [])]
  if len(rows) > 1 or os.path.exists(os.path.join(workdir, UNSURE_FILE)):
    reporting.write_atomic(os.path.join(workdir, UNSURE_FILE), _csv_text(rows))


class _Programs:
  """The compiled parts of a human round, over a leading seed axis of 1 (the checkpoint layout):
  train + evaluate + ask_query, tell_query, and the final train + evaluate."""

  def __init__(self, model, tx, cfg: RoundConfig, seed_batching: str):
    def train_ask(state, pool, test):
      state, metrics = loop.train_and_evaluate(state, pool, test, model=model, tx=tx, cfg=cfg)
      query = loop.ask_query(state, pool, model=model, cfg=cfg)
      return state, {**metrics, "selected": query.indices}, query
    self.train_ask = jax.jit(loop.over_seeds(train_ask, seed_batching))
    self.tell = jax.jit(jax.vmap(loop.tell_query))
    self.final = jax.jit(loop.over_seeds(functools.partial(
        loop.train_and_evaluate, model=model, tx=tx, cfg=cfg), seed_batching))


def run_human(model, tx, cfg: RoundConfig, pool: loop.LabeledArrays, test: loop.LabeledArrays,
              seed: int, split: Splits, rounds: int, *, images: np.ndarray,
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
    (records of the seed in `loop.run`'s format, plus "skipped" and "unsure" dataset indices per
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
  fresh = loop.stack_states([loop.init_state(seed, split, y_np, model, tx, pool.x, cfg.members)])
  progs = _Programs(model, tx, cfg, seed_batching)
  name = cfg.strategy
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
        _append_record(records, r, jax.device_get(metrics), train_index,
                       time.perf_counter() - t0)
        ckpt.save(r + 1, states, records)
        log(f"[{name}] round {r:>3}/{rounds}  final: {_status(records[0]['rounds'][-1])}")
        return records, None
      p = _load_pending(workdir, r, states)
      if p is None:
        t0 = time.perf_counter()
        trained, metrics, query = progs.train_ask(states, pool, test)
        scratch = [{"seed": int(seed), "rounds": []}]
        _append_record(scratch, r, jax.device_get(metrics), train_index,
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
  for clusters, the statistics `loop.cluster_round` reports). Returns the next states."""
  img_ans, clu_ans = answers
  q = jax.tree.map(lambda a: np.asarray(a)[0], p.query)
  valid = [int(i) for i in q.indices if i >= 0]
  image_codes = np.full(q.indices.shape, loop.SKIP, np.int32)
  image_codes[np.asarray(q.indices) >= 0] = np.asarray(img_ans, np.int32).reshape(-1)
  cluster_codes = np.full(q.clusters.shape, loop.DECLINE, np.int32)
  cluster_codes[np.asarray(q.clusters) >= 0] = np.asarray(clu_ans, np.int32).reshape(-1)
  states, by_cluster = progs.tell(p.states, p.query, image_codes[None], cluster_codes[None])
  record = dict(p.record)
  record["skipped"] = [int(train_index[i]) for i, a in zip(valid, img_ans) if a == loop.SKIP]
  record["unsure"] = [int(train_index[i]) for i, a in zip(valid, img_ans) if a == loop.UNSURE]
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
