"""A round's question as files: the pictures (query.png, one PNG per image, a montage per cluster)
and blank labels.csv / clusters.csv, plus the one-line status of a round's record."""
from __future__ import annotations

import os

import numpy as np

from jaxal import reporting
from jaxal.annotation import Query
from jaxal.human.answers import ClassNames, Item, _csv_header, write_answers
from jaxal.human.pictures import _save_png, contact_sheet, display_image
from jaxal.human.answers import round_dir


def status_line(record: dict) -> str:
  """'labels 30, interactions 30, validation accuracy 0.812 (test 0.790)' with what the record
  holds (held-out accuracy for an unlabeled pool; nothing before the first training)."""
  parts = [f"labels {record['labels']}, interactions {record['interactions']}"]
  if record.get("cold_start"):
    parts.append(f"no network yet (cold start: {record['cold_start']})")
  if record.get("val_accuracy") is not None:
    parts.append(f"validation accuracy {record['val_accuracy']:.3f}")
  if record.get("heldout_size"):
    parts.append(f"held-out accuracy {record['heldout_accuracy']:.3f} on "
                 f"{record['heldout_size']} of your labels")
  if record.get("test_accuracy") is not None:
    parts.append(f"test accuracy {record['test_accuracy']:.3f}")
  return ", ".join(parts)


def write_question(workdir: str, r: int, rounds: int, q: Query, record: dict,
                    images: np.ndarray, train_index: np.ndarray,
                    classes: ClassNames) -> tuple[list[Item], list[Item]]:
  """Writes round r's pictures and blank CSVs (an existing CSV is kept: it may hold answers).
  Returns the image and cluster items."""
  rdir = round_dir(workdir, r)
  os.makedirs(rdir, exist_ok=True)
  status = status_line(record)
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
