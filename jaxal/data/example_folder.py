"""Writes a small folder of unlabeled images to try the labeling page on: scikit-learn's digits
0-4 as PNG files (8x8 grey) with a classes.txt, no labels. Point `jaxal-label --data_dir` at your
own folder instead for real work.

  python -m jaxal.data.example_folder label_demo        # 500 images
"""
from __future__ import annotations

import os
import sys

import numpy as np

CLASSES = ("zero", "one", "two", "three", "four")


def write_example_folder(path: str, n: int = 500) -> str:
  """Writes `n` digit images (classes 0-4) to `path` as img_NNNN.png plus classes.txt; the true
  classes go to `<path>.truth.csv` beside the folder (for checking, not read by jaxal)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  d = load_digits(n_class=len(CLASSES))
  n = min(n, len(d.target))
  os.makedirs(path, exist_ok=True)
  rows = ["path,label"]
  for i in range(n):
    name = f"img_{i:04d}.png"
    Image.fromarray(np.round(d.images[i] * 255 / 16).astype(np.uint8)).save(
        os.path.join(path, name))
    rows.append(f"{name},{CLASSES[d.target[i]]}")
  with open(os.path.join(path, "classes.txt"), "w") as f:
    f.write("\n".join(CLASSES) + "\n")
  with open(os.path.abspath(path).rstrip(os.sep) + ".truth.csv", "w") as f:
    f.write("\n".join(rows) + "\n")
  return path


if __name__ == "__main__":
  if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
    sys.exit("usage: python -m jaxal.data.example_folder <folder to write>")
  print(f"wrote {write_example_folder(sys.argv[1])}: 500 unlabeled digit images and classes.txt")
