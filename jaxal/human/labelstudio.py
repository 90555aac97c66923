"""Label Studio interchange: a round's images as Label Studio tasks, and Label Studio's export read
back as the round's answers (written into labels.csv, so every flow continues from there).

Tasks (`round_NNN/labelstudio_tasks.json`, importable in Label Studio): one per image,
`{"data": {"image": <url>, "jaxal_index": i, "jaxal_round": r}, "predictions": [...]}` where the
prediction is the network's proposed class as a `choices` result with its probability as `score`.
The image URL is `<url_prefix><path of round_NNN/images/<i>.png relative to the workdir>`; the
default prefix is Label Studio's local-files route, so with local-file serving enabled and its
document root set to the workdir (`LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`,
`LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<workdir>`) the images show as they are. The labeling
interface is `round_NNN/labelstudio_config.xml` (an Image and one Choices control named
`FROM_NAME` / `TO_NAME`).

Exports read back: Label Studio's "JSON" export (tasks with `annotations`, each a list of
`result`s; a cancelled (skipped) annotation is a `skip`; of several annotations the last one not
cancelled counts) and "JSON_MIN" (flat rows with the control's name as the key of the choice).
Tasks are matched by `jaxal_index` (kept in the task data through Label Studio).
"""
from __future__ import annotations

import json
import os
from typing import Sequence
from xml.sax.saxutils import escape

from jaxal import reporting
from jaxal.annotation import SKIP
from jaxal.human.answers import ClassNames, Item, LabelFileError

FROM_NAME = "label"
TO_NAME = "image"
LOCAL_FILES = "/data/local-files/?d="
TASKS_FILE = "labelstudio_tasks.json"
CONFIG_FILE = "labelstudio_config.xml"


def labeling_config(classes: ClassNames) -> str:
  choices = "\n".join(f'    <Choice value="{escape(n, {chr(34): "&quot;"})}"/>'
                      for n in classes.names)
  return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
          f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">\n'
          f"{choices}\n  </Choices>\n</View>\n")


def write_tasks(workdir: str, r: int, items: Sequence[Item], classes: ClassNames,
                url_prefix: str = LOCAL_FILES, model_version: str = "") -> str:
  """Writes round r's images as Label Studio tasks (and the labeling config) in the round's
  folder. Returns the tasks file's path."""
  rdir = os.path.join(workdir, f"round_{r:03d}")
  tasks = []
  for it in items:
    rel = os.path.relpath(it.picture, workdir).replace(os.sep, "/")
    task = {"data": {"image": url_prefix + rel, "jaxal_index": it.key, "jaxal_round": r}}
    if it.proposed >= 0:
      task["predictions"] = [{
          "model_version": model_version or f"jaxal round {r}", "score": float(it.score),
          "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                      "value": {"choices": [classes.names[it.proposed]]}}]}]
    tasks.append(task)
  path = os.path.join(rdir, TASKS_FILE)
  reporting.write_json_atomic(path, tasks)
  reporting.write_atomic(os.path.join(rdir, CONFIG_FILE), labeling_config(classes))
  return path


def _choice_of(results: Sequence[dict]) -> str | None:
  for res in results or ():
    if res.get("type", "choices") == "choices":
      choices = (res.get("value") or {}).get("choices") or []
      if choices:
        return str(choices[0])
  return None


def read_export(path: str, items: Sequence[Item], classes: ClassNames,
                ) -> list[int | None]:
  """Answers (class codes, `SKIP`, or None where Label Studio has none) for the round's image
  `items`, read from a Label Studio JSON or JSON_MIN export. Tasks of other rounds or images are
  ignored; an unknown class raises LabelFileError naming the task."""
  try:
    with open(path, encoding="utf-8") as f:
      tasks = json.load(f)
  except (OSError, ValueError) as e:
    raise LabelFileError(f"{path}: not a Label Studio JSON export ({e}).") from e
  if not isinstance(tasks, list):
    raise LabelFileError(f"{path}: a Label Studio export is a JSON list of tasks, got "
                         f"{type(tasks).__name__}.")
  position = {it.key: i for i, it in enumerate(items)}
  answers: list[int | None] = [None] * len(items)
  for n, task in enumerate(tasks):
    if not isinstance(task, dict):
      continue
    data = task.get("data", task)   # JSON keeps the task data under "data"; JSON_MIN flattens it
    index = data.get("jaxal_index")
    if index is None or int(index) not in position:
      continue
    if "annotations" in task:
      kept = [a for a in task["annotations"] if isinstance(a, dict)]
      if not kept:
        continue
      last = kept[-1]
      done = [a for a in kept if not a.get("was_cancelled")]
      choice = _choice_of(done[-1].get("result")) if done else None
      if choice is None:
        if last.get("was_cancelled"):
          answers[position[int(index)]] = SKIP
        continue
    else:
      value = task.get(FROM_NAME)
      choice = (value.get("choices", [None])[0] if isinstance(value, dict) else
                value[0] if isinstance(value, list) and value else value)
      if choice is None:
        continue
    code = classes.lookup(str(choice))
    if code is None:
      raise LabelFileError(f"{path}: task {n} (image {index}): unknown class {choice!r}; "
                           f"accepted: {classes.accepted()}.")
    answers[position[int(index)]] = code
  return answers
