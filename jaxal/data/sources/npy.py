"""The `npy` source: a folder of `.npy` files, memory-mapped, for pools too large to load.

    <data_dir>/train_images.npy   uint8 [N, H, W, C]   (memory-mapped, never read whole here)
    <data_dir>/train_labels.npy   int [N]
    <data_dir>/test_images.npy    uint8 [M, H, W, C]   (loaded)
    <data_dir>/test_labels.npy    int [M]
    <data_dir>/class_names.txt    optional, one name a line

The training images stay a read-only `np.memmap`, so `--pool_on=host` streams them from the file
(`jaxal.host_pool`); the labels (4 bytes an item) are read into memory.
"""
from __future__ import annotations

import os

import numpy as np

from jaxal.data.sources.dataset import Dataset, DatasetError, _default_names, check_labels

NPY_FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy")


def _open(path: str, what: str, mmap: bool):
  try:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DatasetError(f"dataset 'npy': cannot read {what} '{path}': {e}") from e


def _load_npy(data_dir: str) -> Dataset:
  if not os.path.isdir(data_dir):
    raise DatasetError(f"dataset 'npy': data_dir '{data_dir}' is not a folder; expected one "
                       f"holding {', '.join(NPY_FILES)}.")
  missing = [f for f in NPY_FILES if not os.path.isfile(os.path.join(data_dir, f))]
  if missing:
    raise DatasetError(f"dataset 'npy': '{data_dir}' lacks {', '.join(missing)}; expected "
                       f"{', '.join(NPY_FILES)} (images uint8 [N, H, W, C], labels int [N]).")
  arrays = {}
  for name in NPY_FILES:
    path = os.path.join(data_dir, name)
    a = _open(path, name, mmap=name == "train_images.npy")
    if name.endswith("images.npy") and (a.dtype != np.uint8 or a.ndim != 4):
      raise DatasetError(f"dataset 'npy': {name} holds {a.dtype} {a.shape}; expected uint8 images "
                         "[N, H, W, C].")
    if name.endswith("labels.npy"):
      if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise DatasetError(f"dataset 'npy': {name} holds {a.dtype} {a.shape}; expected int [N].")
      a = np.asarray(a, np.int32)
    arrays[name] = a
  names_path = os.path.join(data_dir, "class_names.txt")
  labels = (arrays["train_labels.npy"], arrays["test_labels.npy"])
  if os.path.isfile(names_path):
    with open(names_path) as f:
      class_names = tuple(line.strip() for line in f if line.strip())
  else:
    class_names = tuple(_default_names(max(int(y.max()) for y in labels if y.size) + 1))
  for y, name in zip(labels, ("train_labels.npy", "test_labels.npy")):
    check_labels(y, len(class_names), f"dataset 'npy', {name}")
  x = arrays["train_images.npy"]
  return Dataset(x_train=x, y_train=labels[0], x_test=np.asarray(arrays["test_images.npy"]),
                 y_test=labels[1], class_names=class_names,
                 train_index=np.arange(x.shape[0], dtype=np.int64), name=f"npy:{data_dir}")


def save_npy_dataset(data_dir: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray, class_names=None) -> None:
  """Writes the `npy` layout (small datasets; large pools are written block by block)."""
  os.makedirs(data_dir, exist_ok=True)
  for name, a in zip(NPY_FILES, (x_train, y_train, x_test, y_test)):
    np.save(os.path.join(data_dir, name), np.ascontiguousarray(a))
  if class_names:
    with open(os.path.join(data_dir, "class_names.txt"), "w") as f:
      f.write("".join(f"{c}\n" for c in class_names))
