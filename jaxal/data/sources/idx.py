"""The `idx` source: a directory of MNIST-style IDX files (optionally gzipped) and class names."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from jaxal.data.sources.dataset import (Dataset, DatasetError, _check_unique, _default_names,
                                        check_labels)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""File names of an IDX directory (MNIST layout), per split: (images, labels); each may end in .gz."""

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")


def _find_idx_file(directory: str, base: str) -> str | None:
  """The path of `base` (preferred) or `base.gz` in `directory`, or None if neither exists."""
  for candidate in (base, base + ".gz"):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  return None


def read_idx(path: str, ndim: int) -> np.ndarray:
  """Reads an unsigned-byte IDX file (optionally gzipped) with `ndim` dimensions.

  Args:
    path: the file; a name ending in .gz is decompressed.
    ndim: the expected number of dimensions (3 for images [N, H, W], 1 for labels [N]).

  Returns:
    uint8 array with the header's dimensions.

  Raises:
    DatasetError: unreadable file, wrong magic number, truncated or oversized data.
  """
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        data = f.read()
    else:
      with open(path, "rb") as f:
        data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DatasetError(f"cannot read IDX file '{path}': {e}") from e
  expected_magic = 0x0800 | ndim
  header_len = 4 + 4 * ndim
  if len(data) < 4:
    raise DatasetError(f"IDX file '{path}' is {len(data)} bytes long, too short for a header "
                       f"(expected magic number 0x{expected_magic:08X}).")
  (magic,) = struct.unpack(">I", data[:4])
  if magic != expected_magic:
    raise DatasetError(
        f"IDX file '{path}' has magic number 0x{magic:08X}; expected 0x{expected_magic:08X} "
        f"(unsigned bytes, {ndim} dimension(s)).")
  if len(data) < header_len:
    raise DatasetError(f"IDX file '{path}' is truncated: {len(data)} bytes, but its header needs "
                       f"{header_len} bytes ({ndim} dimension sizes).")
  dims = struct.unpack(f">{ndim}I", data[4:header_len])
  expected_len = header_len + math.prod(dims)
  if len(data) != expected_len:
    raise DatasetError(
        f"IDX file '{path}' holds {len(data) - header_len} data bytes, but its header declares "
        f"dimensions {tuple(dims)}, i.e. {expected_len - header_len} bytes "
        f"({'truncated' if len(data) < expected_len else 'trailing bytes'}).")
  return np.frombuffer(data, np.uint8, offset=header_len).reshape(dims).copy()


def _idx_class_names(directory: str) -> tuple[tuple[str, ...], str]:
  """(class names, where they came from) for an IDX directory."""
  path = os.path.join(directory, "classes.txt")
  if os.path.isfile(path):
    try:
      with open(path, encoding="utf-8") as f:
        names = tuple(line.strip() for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as e:
      raise DatasetError(f"cannot read class names file '{path}': {e}") from e
    if not names:
      raise DatasetError(f"class names file '{path}' holds no names (expected one name per line).")
    _check_unique(names, f"class names file '{path}'")
    return names, f"'{path}'"
  if "fashion" in os.path.basename(os.path.normpath(os.path.abspath(directory))).lower():
    return FASHION_MNIST_CLASSES, "the Fashion-MNIST names (directory name contains 'fashion')"
  return _default_names(10), "the default names '0'..'9'"


def _load_idx(directory: str) -> Dataset:
  if not os.path.isdir(directory):
    raise DatasetError(f"dataset 'idx': data_dir '{directory}' is not a directory; expected a "
                       f"directory holding {_idx_expected()}.")
  paths, missing = {}, []
  for split, bases in IDX_FILES.items():
    for base in bases:
      found = _find_idx_file(directory, base)
      if found is None:
        missing.append(f"{base} or {base}.gz")
      paths[base] = found
  if missing:
    raise DatasetError(f"dataset 'idx': missing file(s) in directory '{directory}': "
                       f"{'; '.join(missing)} (expected {_idx_expected()}).")
  class_names, names_from = _idx_class_names(directory)
  arrays = {}
  for split, (image_base, label_base) in IDX_FILES.items():
    images = read_idx(paths[image_base], 3)
    labels = read_idx(paths[label_base], 1)
    if images.shape[0] != labels.shape[0]:
      raise DatasetError(
          f"IDX {split} split in '{directory}': '{os.path.basename(paths[image_base])}' holds "
          f"{images.shape[0]} images but '{os.path.basename(paths[label_base])}' holds "
          f"{labels.shape[0]} labels; the counts must match.")
    labels = labels.astype(np.int32)
    check_labels(labels, len(class_names), f"IDX file '{paths[label_base]}'",
                 hint=f" The class names came from {names_from}" + (
                     "." if names_from.startswith("'") else
                     "; add a classes.txt (one name per line) to the directory to name more "
                     "classes."))
    arrays[split] = (images[..., None], labels)
  name = "idx:" + os.path.basename(os.path.normpath(os.path.abspath(directory)))
  return Dataset(x_train=arrays["train"][0], y_train=arrays["train"][1], x_test=arrays["test"][0],
                 y_test=arrays["test"][1], class_names=class_names,
                 train_index=np.arange(arrays["train"][0].shape[0], dtype=np.int64), name=name)


def _idx_expected() -> str:
  names = [b for bases in IDX_FILES.values() for b in bases]
  return ", ".join(names) + " (each optionally ending in .gz)"
