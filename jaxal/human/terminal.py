"""The terminal session: asks item by item, writes every answer at once (through `save`), and
supports skip, unsure, undo and quit."""
from __future__ import annotations

from typing import Callable, Sequence, TextIO

from jaxal.annotation import DECLINE, SKIP, UNSURE
from jaxal.human.answers import ClassNames, Item, SKIP_WORDS, UNSURE_WORDS


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
        code = SKIP
      elif low in ("?",) + UNSURE_WORDS:
        code = UNSURE
    elif low in ("", "a", "accept"):
      code = item.proposed
    elif low in ("d", "decline"):
      code = DECLINE
    if code is None and line:
      code = classes.lookup(line)
    if code is None:
      say(f"{line!r} is not an answer here; accepted: {accepted(item)}.")
      continue
    answers[pos] = code
    save(answers)
    pos = first_open(pos)
