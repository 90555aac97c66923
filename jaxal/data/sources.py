"""Image-classification datasets from local files: scikit-learn digits, IDX, image folders, npz, TFDS.

Every source returns a `Dataset` of uint8 images [N, H, W, C] and int32 labels [N]. Nothing is
rescaled, clipped or dropped silently: data that does not fit this form raises `DatasetError`, whose
message says what was looked for, where, and which values are accepted.

Entry point: `load_dataset(name, data_dir, ...)` with `name` one of `SOURCE_NAMES` or `tfds:<name>`.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Dataset",
    "DatasetError",
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "IMAGE_EXTENSIONS",
    "SOURCE_NAMES",
    "check_labels",
    "load_dataset",
    "read_idx",
]

SOURCE_NAMES = ("digits", "idx", "folder", "npz", "tfds:<catalog name>")
"""Accepted values of `load_dataset(name=...)`; the last stands for e.g. `tfds:mnist`."""

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""File names of an IDX directory (MNIST layout), per split: (images, labels); each may end in .gz."""

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""File extensions (case-insensitive) read by the `folder` source."""

_TRAIN_DIR_NAMES = ("train", "training")
_TEST_DIR_NAMES = ("test", "testing")
_FOLDER_CACHE_VERSION = 1


class DatasetError(ValueError):
  """A dataset could not be found, read or validated; the message says what, where and what is accepted."""


# --------------------------------------------------------------------------------------------------
# Dataset


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """An image-classification dataset held in memory.

  Attributes:
    x_train: uint8 [N, H, W, C] training images.
    y_train: int32 [N] training labels in [0, num_classes).
    x_test: uint8 [M, H, W, C] test images (same H, W, C as `x_train`).
    y_test: int32 [M] test labels in [0, num_classes).
    class_names: the C' distinct class names; label k is `class_names[k]`.
    train_index: int64 [N] position of each training item in the source's original training order
      (`arange(N)` right after loading; transforms that drop items keep the original positions).
    name: a short description of the source, e.g. "digits", "idx:mnist", "tfds:mnist".

  Construction validates dtypes, ranks, lengths and label ranges and raises `DatasetError`.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]
  train_index: np.ndarray
  name: str

  def __post_init__(self):
    where = f"dataset '{self.name}'"
    if not isinstance(self.class_names, tuple) or not all(
        isinstance(c, str) for c in self.class_names):
      raise DatasetError(f"{where}: class_names must be a tuple of str, got {self.class_names!r}.")
    if not self.class_names:
      raise DatasetError(f"{where}: class_names is empty; a dataset needs at least one class.")
    _check_unique(self.class_names, f"{where}: class_names")
    for split in ("train", "test"):
      x = getattr(self, f"x_{split}")
      y = getattr(self, f"y_{split}")
      if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
        raise DatasetError(
            f"{where}: x_{split} must be a uint8 array [N, H, W, C], got "
            f"{_describe_array(x)}.")
      if not isinstance(y, np.ndarray) or y.dtype != np.int32 or y.shape != (x.shape[0],):
        raise DatasetError(
            f"{where}: y_{split} must be an int32 array of shape ({x.shape[0]},) matching "
            f"x_{split}, got {_describe_array(y)}.")
      check_labels(y, len(self.class_names), f"{where}, y_{split}")
    if self.x_train.shape[1:] != self.x_test.shape[1:]:
      raise DatasetError(
          f"{where}: train images have shape {self.x_train.shape[1:]} but test images have shape "
          f"{self.x_test.shape[1:]}; they must match (H, W, C).")
    if (not isinstance(self.train_index, np.ndarray) or self.train_index.dtype != np.int64
        or self.train_index.shape != (self.x_train.shape[0],)):
      raise DatasetError(
          f"{where}: train_index must be an int64 array of shape ({self.x_train.shape[0]},), got "
          f"{_describe_array(self.train_index)}.")

  @property
  def num_classes(self) -> int:
    """C, the number of classes (`len(class_names)`)."""
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """(H, W, C) of every image."""
    h, w, c = self.x_train.shape[1:]
    return (int(h), int(w), int(c))

  def __repr__(self) -> str:
    return (f"Dataset(name={self.name!r}, train={self.x_train.shape[0]}, test={self.x_test.shape[0]}, "
            f"image_shape={self.image_shape}, num_classes={self.num_classes})")


def _describe_array(a: Any) -> str:
  if isinstance(a, np.ndarray):
    return f"{a.dtype} array of shape {a.shape}"
  return f"{type(a).__name__}"


def _check_unique(items: Sequence[Any], what: str) -> None:
  seen, dups = set(), []
  for item in items:
    if item in seen and item not in dups:
      dups.append(item)
    seen.add(item)
  if dups:
    raise DatasetError(f"{what} holds duplicates: {dups}.")


def check_labels(y: np.ndarray, num_classes: int, where: str, hint: str = "") -> None:
  """Raises `DatasetError` naming the first label of int [N] `y` outside [0, num_classes)."""
  if y.size == 0:
    return
  bad = np.flatnonzero((y < 0) | (y >= num_classes))
  if bad.size:
    i = int(bad[0])
    raise DatasetError(
        f"{where}: label {int(y[i])} at position {i} is outside [0, {num_classes}) "
        f"({bad.size} such label(s)); labels must index the {num_classes} class names.{hint}")


# --------------------------------------------------------------------------------------------------
# Entry point


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, test_fraction: float = 0.25,
                 seed: int = 0, cache_dir: str | os.PathLike | None = None,
                 image_key: str = "image", label_key: str = "label") -> Dataset:
  """Loads a dataset into memory.

  Args:
    name: the source, one of `SOURCE_NAMES`:
      "digits": scikit-learn's 8x8 digits (1797 images, values 0..16 mapped to round(v * 255 / 16));
        no data_dir.
      "idx": a directory of MNIST-style IDX files (`IDX_FILES`, each optionally gzipped).
      "folder": an image folder, or a .zip of one: `<split>/<class>/<image>` with split folders
        train|training and test|testing (case-insensitive), or `<class>/<image>` without split
        folders; the whole layout may sit inside one top-level folder.
      "npz": a .npz file (or a directory holding exactly one) with arrays x_train, y_train, x_test,
        y_test, or images, labels; optional class_names.
      "tfds:<catalog name>": a TFDS dataset already prepared (array_record format) under data_dir,
        read through `tfds.data_source` (splits "train" and "test").
    data_dir: where the files are; required for idx, folder and npz; for tfds the TFDS data dir
      (None = TFDS's default).
    test_fraction: the fraction of items held out as the test split for sources without an
      official one (digits, folder without split folders, npz with images/labels); the split is
      stratified by class and deterministic in `seed`. Must be in (0, 1).
    seed: seed of that split.
    cache_dir: folder source only: where to cache decoded arrays (None = no cache). The cache is
      keyed by the source's absolute path, size and modification time.
    image_key: tfds only: the feature holding the image.
    label_key: tfds only: the feature holding the (ClassLabel) label.

  Returns:
    The `Dataset`, with `train_index = arange(N)`.

  Raises:
    DatasetError: unknown name, missing data_dir, missing or malformed files, invalid values.
  """
  if not isinstance(name, str):
    raise DatasetError(f"dataset name must be a str, one of {list(SOURCE_NAMES)}; got {name!r}.")
  if (image_key, label_key) != ("image", "label") and not name.startswith("tfds:"):
    raise DatasetError(
        f"image_key/label_key apply only to 'tfds:<catalog name>' datasets, not to '{name}'.")
  if name == "digits":
    if data_dir is not None:
      raise DatasetError("dataset 'digits' is bundled with scikit-learn and takes no data_dir; "
                         f"got data_dir={os.fspath(data_dir)!r}.")
    return _load_digits(test_fraction, seed)
  if name in ("idx", "folder", "npz"):
    if data_dir is None:
      raise DatasetError(f"dataset '{name}' needs data_dir (the path of the {name} data); got None.")
    data_dir = os.fspath(data_dir)
    if name == "idx":
      return _load_idx(data_dir)
    if name == "folder":
      return _load_folder(data_dir, test_fraction, seed,
                          None if cache_dir is None else os.fspath(cache_dir))
    return _load_npz(data_dir, test_fraction, seed)
  if name.startswith("tfds:") and name[len("tfds:"):]:
    return _load_tfds(name[len("tfds:"):], None if data_dir is None else os.fspath(data_dir),
                      image_key, label_key)
  raise DatasetError(
      f"unknown dataset name {name!r}; accepted values: {', '.join(SOURCE_NAMES)} "
      "(e.g. 'tfds:mnist').")


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int,
                      where: str) -> tuple[np.ndarray, np.ndarray]:
  """Stratified, deterministic (train, test) index split; both int64, sorted ascending."""
  from sklearn.model_selection import train_test_split  # pylint: disable=import-outside-toplevel
  if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not (
      0.0 < float(test_fraction) < 1.0):
    raise DatasetError(
        f"test_fraction must be a number in (0, 1), got {test_fraction!r}; {where} has no official "
        "test split, so one is drawn from its items.")
  idx = np.arange(labels.shape[0], dtype=np.int64)
  try:
    train, test = train_test_split(idx, test_size=float(test_fraction), random_state=seed,
                                   shuffle=True, stratify=labels)
  except (ValueError, TypeError) as e:
    raise DatasetError(
        f"cannot draw a stratified test split with test_fraction={test_fraction}, seed={seed} from "
        f"{where} ({labels.shape[0]} items): {e}") from e
  return np.sort(train), np.sort(test)


def _from_pool(images: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...],
               test_fraction: float, seed: int, name: str, where: str) -> Dataset:
  train, test = _stratified_split(labels, test_fraction, seed, where)
  return Dataset(x_train=images[train], y_train=labels[train], x_test=images[test],
                 y_test=labels[test], class_names=class_names,
                 train_index=np.arange(train.size, dtype=np.int64), name=name)


def _to_uint8_images(x: np.ndarray, where: str) -> np.ndarray:
  """[N, H, W] or [N, H, W, C] images of integral values in [0, 255] -> uint8 [N, H, W, C].

  Raises `DatasetError` (never rescales or clips) for other ranks, dtypes, NaN/inf, non-integral or
  out-of-range values.
  """
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise DatasetError(f"{where}: images must have shape [N, H, W] or [N, H, W, C], got {x.shape}.")
  if x.dtype == np.uint8:
    return x
  accepted = "accepted: uint8, or integer/float arrays holding integral values in [0, 255]"
  if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer)
                                 or np.issubdtype(x.dtype, np.floating)):
    raise DatasetError(f"{where}: images have dtype {x.dtype}; {accepted}.")
  if x.size == 0:
    return x.astype(np.uint8)
  if np.issubdtype(x.dtype, np.floating):
    finite = np.isfinite(x)
    if not finite.all():
      pos = np.unravel_index(int(np.argmin(finite)), x.shape)
      raise DatasetError(
          f"{where}: images hold {int(x.size - finite.sum())} NaN/inf value(s), the first "
          f"{x[pos]} at index {tuple(int(p) for p in pos)}; {accepted}.")
    integral = x == np.round(x)
    if not integral.all():
      pos = np.unravel_index(int(np.argmin(integral)), x.shape)
      raise DatasetError(
          f"{where}: images hold non-integral values, e.g. {x[pos]} at index "
          f"{tuple(int(p) for p in pos)}; {accepted}. The loader does not rescale: images in "
          "[0, 1] must be multiplied by 255 and rounded before saving.")
  lo, hi = x.min(), x.max()
  if lo < 0 or hi > 255:
    raise DatasetError(
        f"{where}: image values range over [{lo}, {hi}], outside [0, 255]; {accepted} "
        "(the loader does not clip or rescale).")
  return x.astype(np.uint8)


def _to_int32_labels(y: np.ndarray, where: str) -> np.ndarray:
  """Integer labels [N] (or [N, 1]) -> int32 [N]; negative values raise `DatasetError`."""
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1:
    raise DatasetError(f"{where}: labels must have shape [N] (or [N, 1]), got {y.shape}.")
  if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
    raise DatasetError(f"{where}: labels have dtype {y.dtype}; accepted: integer dtypes.")
  if y.size and (y.min() < 0 or y.max() > np.iinfo(np.int32).max):
    bad = int(np.flatnonzero((y < 0) | (y > np.iinfo(np.int32).max))[0])
    raise DatasetError(f"{where}: label {int(y[bad])} at position {bad} is not a valid class index "
                       "(accepted: 0 <= label < number of classes).")
  return y.astype(np.int32)


def _default_names(num_classes: int) -> tuple[str, ...]:
  return tuple(str(i) for i in range(num_classes))


# --------------------------------------------------------------------------------------------------
# digits


def _load_digits(test_fraction: float, seed: int) -> Dataset:
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  bunch = load_digits()
  images = np.asarray(bunch.images, np.float64)  # [1797, 8, 8], integral values 0..16
  x = np.round(images * 255.0 / 16.0).astype(np.uint8)[..., None]
  y = np.asarray(bunch.target).astype(np.int32)
  return _from_pool(x, y, _default_names(10), test_fraction, seed, "digits",
                    "dataset 'digits' (scikit-learn)")


# --------------------------------------------------------------------------------------------------
# IDX


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


# --------------------------------------------------------------------------------------------------
# Image folders and zips


class _Tree:
  """Read access to the files of a directory or a zip (members are '/'-separated relative paths)."""

  def members(self) -> list[str]:
    raise NotImplementedError

  def read(self, member: str) -> bytes:
    raise NotImplementedError

  def describe(self, member: str) -> str:
    raise NotImplementedError

  def fingerprint(self) -> dict[str, Any]:
    raise NotImplementedError

  def close(self) -> None:
    pass


class _DirTree(_Tree):

  def __init__(self, root: str):
    self.root = os.path.abspath(root)
    self._members: list[str] | None = None

  def members(self) -> list[str]:
    if self._members is None:
      out = []
      for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
        dirnames.sort()
        rel = os.path.relpath(dirpath, self.root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        out.extend(prefix + f for f in sorted(filenames))
      self._members = out
    return self._members

  def read(self, member: str) -> bytes:
    with open(os.path.join(self.root, *member.split("/")), "rb") as f:
      return f.read()

  def describe(self, member: str) -> str:
    return f"'{os.path.join(self.root, *member.split('/'))}'"

  def fingerprint(self) -> dict[str, Any]:
    # A directory's own mtime does not change when files deeper down do: stat every file.
    entries = []
    for m in self.members():
      st = os.stat(os.path.join(self.root, *m.split("/")))
      entries.append((m, st.st_size, st.st_mtime_ns))
    digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return {"kind": "dir", "path": self.root, "files": digest}


class _ZipTree(_Tree):

  def __init__(self, path: str):
    self.path = os.path.abspath(path)
    try:
      self._zip = zipfile.ZipFile(self.path)
    except (OSError, zipfile.BadZipFile) as e:
      raise DatasetError(f"dataset 'folder': cannot open zip file '{self.path}': {e}") from e

  def members(self) -> list[str]:
    return [i.filename for i in self._zip.infolist() if not i.is_dir()]

  def read(self, member: str) -> bytes:
    try:
      return self._zip.read(member)
    except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
      raise DatasetError(f"cannot read {self.describe(member)}: {e}") from e

  def describe(self, member: str) -> str:
    return f"'{member}' in zip '{self.path}'"

  def fingerprint(self) -> dict[str, Any]:
    return _file_fingerprint(self.path)

  def close(self) -> None:
    self._zip.close()


def _file_fingerprint(path: str) -> dict[str, Any]:
  st = os.stat(path)
  return {"kind": "file", "path": os.path.abspath(path), "size": st.st_size,
          "mtime_ns": st.st_mtime_ns}


@dataclasses.dataclass
class _FolderPlan:
  """Which members hold which class, per split ("train"/"test", or "all" without split folders)."""
  class_names: tuple[str, ...]
  splits: dict[str, list[tuple[str, int]]]  # split -> [(member, label)] sorted by (label, file name)


def _is_hidden(parts: Sequence[str]) -> bool:
  return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _plan_folder(members: Iterable[str], where: str) -> _FolderPlan:
  """Works out the layout of an image folder from its file list (see `load_dataset`)."""
  layouts = ("'<split>/<class>/<image>' (split folders train|training and test|testing, "
             "case-insensitive) or '<class>/<image>', optionally inside one top-level folder; "
             f"images: {', '.join(IMAGE_EXTENSIONS)}")
  files = [tuple(m.split("/")) for m in members]
  files = [p for p in files if not _is_hidden(p)]
  images = [p for p in files if os.path.splitext(p[-1])[1].lower() in IMAGE_EXTENSIONS]
  others = [p for p in files if os.path.splitext(p[-1])[1].lower() not in IMAGE_EXTENSIONS]
  if not images:
    raise DatasetError(f"no image files found in {where}; expected {layouts}.")

  split_role = {}
  for n in _TRAIN_DIR_NAMES:
    split_role[n] = "train"
  for n in _TEST_DIR_NAMES:
    split_role[n] = "test"

  # One wrapper folder (e.g. cifar10/ in a zip): all images below the same top folder, at depth >= 3,
  # and that folder is not itself a split folder.
  prefix: tuple[str, ...] = ()
  tops = {p[0] for p in images}
  if len(tops) == 1 and all(len(p) >= 3 for p in images):
    top = next(iter(tops))
    if top.lower() not in split_role:
      prefix = (top,)
  rel_images = [p[len(prefix):] for p in images]

  def show(rel: tuple[str, ...]) -> str:
    return "/".join(prefix + rel)

  top_dirs = sorted({r[0] for r in rel_images if len(r) > 1})
  has_splits = any(t.lower() in split_role for t in top_dirs)
  if has_splits:
    role_dirs: dict[str, list[str]] = {"train": [], "test": []}
    unknown = []
    for t in top_dirs:
      (role_dirs[split_role[t.lower()]] if t.lower() in split_role else unknown).append(t)
    if unknown:
      raise DatasetError(
          f"{where}: found split folder(s) {role_dirs['train'] + role_dirs['test']} next to other "
          f"image folder(s) {unknown}; accepted split folder names: "
          f"{'|'.join(_TRAIN_DIR_NAMES)} and {'|'.join(_TEST_DIR_NAMES)} (case-insensitive). "
          "Move or remove the other folders so no images are left out.")
    for role, accepted in (("train", _TRAIN_DIR_NAMES), ("test", _TEST_DIR_NAMES)):
      if len(role_dirs[role]) != 1:
        raise DatasetError(
            f"{where}: expected exactly one {role} folder (accepted names: "
            f"{'|'.join(accepted)}, case-insensitive), found {role_dirs[role] or 'none'} "
            f"(top-level folders: {top_dirs}).")
    depth = 3
  else:
    depth = 2
  for r in rel_images:
    if len(r) != depth:
      raise DatasetError(f"{where}: image '{show(r)}' is not at the expected depth; expected "
                         f"{layouts}.")

  grouped: dict[str, dict[str, list[str]]] = {}
  for img, r in zip(images, rel_images):
    split = split_role[r[0].lower()] if has_splits else "all"
    grouped.setdefault(split, {}).setdefault(r[-2], []).append("/".join(img))
  if has_splits:
    train_classes, test_classes = sorted(grouped["train"]), sorted(grouped["test"])
    if train_classes != test_classes:
      raise DatasetError(
          f"{where}: the train and test folders hold different class folders: train "
          f"{train_classes}, test {test_classes} (only in train: "
          f"{sorted(set(train_classes) - set(test_classes))}, only in test: "
          f"{sorted(set(test_classes) - set(train_classes))}); they must hold the same classes.")
  class_names = tuple(sorted({c for per_class in grouped.values() for c in per_class}))
  label_of = {c: i for i, c in enumerate(class_names)}

  # Files that are not images but sit in a class folder would be left out: refuse them.
  class_dirs = {tuple(img[:-1]) for img in images}
  stray = ["/".join(p) for p in others if tuple(p[:-1]) in class_dirs]
  if stray:
    raise DatasetError(
        f"{where}: {len(stray)} file(s) in class folders are not images of an accepted type, e.g. "
        f"{stray[:5]}; accepted extensions: {', '.join(IMAGE_EXTENSIONS)} (case-insensitive).")

  splits = {}
  for split, per_class in grouped.items():
    items = []
    for c in class_names:
      items.extend((m, label_of[c]) for m in sorted(per_class.get(c, []),
                                                       key=lambda m: m.rsplit("/", 1)[-1]))
    splits[split] = items
  return _FolderPlan(class_names=class_names, splits=splits)


def _decode_image(data: bytes, desc: str) -> np.ndarray:
  """Image bytes -> uint8 [H, W, C] with C = 1 (grayscale) or 3 (colour)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      mode = im.mode
      if mode == "L":
        arr = np.asarray(im)
      elif mode in ("1", "LA", "La"):  # binary or grayscale+alpha: alpha dropped
        arr = np.asarray(im.convert("L"))
      elif mode in ("RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        arr = np.asarray(im.convert("RGB"))
      else:
        arr = None
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise DatasetError(f"cannot decode image {desc}: {e}") from e
  if arr is None:
    raise DatasetError(
        f"image {desc} has mode {mode!r}; accepted modes: L, 1, LA (read as grayscale) and RGB, "
        "RGBA, P, CMYK, YCbCr (read as RGB). 16-bit and float images are not converted to uint8 "
        "silently; convert them to 8-bit first.")
  if arr.ndim == 2:
    arr = arr[..., None]
  return arr


def _decode_members(tree: _Tree, members: Sequence[str], expected_shape: tuple[int, ...],
                    first_desc: str) -> np.ndarray:
  """Decodes `members` into uint8 [len(members), *expected_shape].

  Serial on purpose: on the 60,000 32x32 JPEGs of a CIFAR-10 zip (2-core machine), serial decoding
  took ~6 s, while a 2-process pool (fork or spawn) and a thread pool were ~2x slower (per-image
  work is small, so pickling and GIL contention dominate); use `cache_dir` to skip decoding.
  """
  out = np.empty((len(members), *expected_shape), np.uint8)
  for i, m in enumerate(members):
    arr = _decode_image(tree.read(m), tree.describe(m))
    if arr.shape != expected_shape:
      raise DatasetError(
          f"image {tree.describe(m)} has shape {arr.shape} (H, W, C) but the expected shape is "
          f"{expected_shape}, that of the first image {first_desc}; all images of a dataset must "
          "share one size and mode (C=1 grayscale, C=3 colour).")
    out[i] = arr
  return out


def _decode_plan(tree: _Tree, plan: _FolderPlan) -> dict[str, np.ndarray]:
  order = [s for s in ("train", "test", "all") if s in plan.splits]
  first_member = plan.splits[order[0]][0][0]
  expected = _decode_image(tree.read(first_member), tree.describe(first_member)).shape
  arrays = {}
  for split in order:
    members = [m for m, _ in plan.splits[split]]
    labels = np.array([c for _, c in plan.splits[split]], np.int32)
    key_x, key_y = ("images", "labels") if split == "all" else (f"x_{split}", f"y_{split}")
    arrays[key_x] = _decode_members(tree, members, expected, tree.describe(first_member))
    arrays[key_y] = labels
  arrays["class_names"] = np.array(plan.class_names, dtype=str)
  return arrays


_CACHE_KEYS = ({"x_train", "y_train", "x_test", "y_test", "class_names"},
               {"images", "labels", "class_names"})


def _read_cache(path: str) -> dict[str, np.ndarray] | None:
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    warnings.warn(f"ignoring unreadable dataset cache '{path}' ({e}); decoding again.")
    return None
  if set(arrays) not in _CACHE_KEYS:
    warnings.warn(f"ignoring dataset cache '{path}' with unexpected keys {sorted(arrays)}; "
                  "decoding again.")
    return None
  return arrays


def _write_cache(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes `arrays` to `path` atomically (temporary file in the same folder, then os.replace)."""
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _folder_cache_path(cache_dir: str, fingerprint: dict[str, Any]) -> str:
  """The cache file for a folder source with the given fingerprint (path, size, mtime)."""
  key = hashlib.sha256(json.dumps({"version": _FOLDER_CACHE_VERSION, **fingerprint},
                                  sort_keys=True).encode()).hexdigest()[:24]
  stem = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                 for ch in os.path.basename(fingerprint["path"]))
  return os.path.join(cache_dir, f"folder-{stem}-{key}.npz")


def _load_folder(data_dir: str, test_fraction: float, seed: int, cache_dir: str | None) -> Dataset:
  if os.path.isdir(data_dir):
    tree: _Tree = _DirTree(data_dir)
  elif os.path.isfile(data_dir):
    if not zipfile.is_zipfile(data_dir):
      raise DatasetError(f"dataset 'folder': data_dir '{data_dir}' is a file but not a zip; "
                         "expected an image folder or a .zip of one.")
    tree = _ZipTree(data_dir)
  else:
    raise DatasetError(f"dataset 'folder': data_dir '{data_dir}' does not exist; expected an image "
                       "folder or a .zip of one.")
  base = os.path.basename(os.path.normpath(os.path.abspath(data_dir)))
  name = "folder:" + (base[:-4] if base.lower().endswith(".zip") else base)
  where = (f"zip '{tree.path}'" if isinstance(tree, _ZipTree) else f"folder '{tree.root}'")
  try:
    arrays = None
    cache_path = None
    if cache_dir is not None:
      cache_path = _folder_cache_path(cache_dir, tree.fingerprint())
      arrays = _read_cache(cache_path)
    if arrays is None:
      arrays = _decode_plan(tree, _plan_folder(tree.members(), where))
      if cache_path is not None:
        _write_cache(cache_path, arrays)
  finally:
    tree.close()
  class_names = tuple(str(c) for c in arrays["class_names"])
  if "images" in arrays:
    return _from_pool(arrays["images"], arrays["labels"], class_names, test_fraction, seed, name,
                      where)
  return Dataset(x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"],
                 y_test=arrays["y_test"], class_names=class_names,
                 train_index=np.arange(arrays["x_train"].shape[0], dtype=np.int64), name=name)


# --------------------------------------------------------------------------------------------------
# npz

_NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("images", "labels"))


def _load_npz(data_dir: str, test_fraction: float, seed: int) -> Dataset:
  accepted = ("accepted key sets: x_train, y_train, x_test, y_test (+ optional class_names) or "
              "images, labels (+ optional class_names)")
  if os.path.isdir(data_dir):
    found = sorted(f for f in os.listdir(data_dir)
                   if f.lower().endswith(".npz") and not f.startswith("."))
    if len(found) != 1:
      raise DatasetError(f"dataset 'npz': directory '{data_dir}' must hold exactly one .npz file, "
                         f"found {found or 'none'}; or pass the file itself as data_dir.")
    path = os.path.join(data_dir, found[0])
  elif os.path.isfile(data_dir):
    path = data_dir
  else:
    raise DatasetError(f"dataset 'npz': data_dir '{data_dir}' does not exist; expected a .npz file "
                       "or a directory holding exactly one.")
  try:
    with np.load(path, allow_pickle=False) as z:
      keys = set(z.files)
      layout = next((l for l in _NPZ_LAYOUTS if set(l) <= keys), None)
      other = {k for l in _NPZ_LAYOUTS if l is not layout for k in l} & keys
      if layout is None or other:
        raise DatasetError(f"npz file '{path}' has keys {sorted(keys)}; {accepted}.")
      extra = keys - set(layout) - {"class_names"}
      if extra:
        raise DatasetError(f"npz file '{path}' has unexpected keys {sorted(extra)} that would be "
                           f"left out; {accepted}.")
      arrays = {k: z[k] for k in keys}
  except DatasetError:
    raise
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    hint = (" (class_names must be saved as a str array, e.g. np.array(names, dtype=str); object "
            "arrays need pickle, which is not allowed)") if "pickle" in str(e) else ""
    raise DatasetError(f"cannot read npz file '{path}': {e}{hint}") from e

  where = f"npz file '{path}'"
  xs = {k: _to_uint8_images(arrays[k], f"{where}, array '{k}'") for k in layout if k[0] in "xi"}
  ys = {k: _to_int32_labels(arrays[k], f"{where}, array '{k}'") for k in layout if k[0] in "yl"}
  for kx, ky in zip([k for k in layout if k[0] in "xi"], [k for k in layout if k[0] in "yl"]):
    if xs[kx].shape[0] != ys[ky].shape[0]:
      raise DatasetError(f"{where}: '{kx}' holds {xs[kx].shape[0]} images but '{ky}' holds "
                         f"{ys[ky].shape[0]} labels; the counts must match.")
  if "class_names" in arrays:
    names = arrays["class_names"]
    if names.ndim != 1 or names.dtype.kind not in "US":
      raise DatasetError(f"{where}: 'class_names' must be a 1-D str array, got "
                         f"{_describe_array(names)}.")
    class_names = tuple(str(n) for n in names.astype(str))
    hint = f" ('class_names' lists {len(class_names)} classes)"
  else:
    num_classes = max((int(y.max()) + 1 for y in ys.values() if y.size), default=0)
    class_names = _default_names(num_classes)
    hint = ""
  for k, y in ys.items():
    check_labels(y, len(class_names), f"{where}, array '{k}'", hint=hint)
  name = "npz:" + os.path.splitext(os.path.basename(path))[0]
  if layout[0] == "images":
    return _from_pool(xs["images"], ys["labels"], class_names, test_fraction, seed, name, where)
  return Dataset(x_train=xs["x_train"], y_train=ys["y_train"], x_test=xs["x_test"],
                 y_test=ys["y_test"], class_names=class_names,
                 train_index=np.arange(xs["x_train"].shape[0], dtype=np.int64), name=name)


# --------------------------------------------------------------------------------------------------
# TFDS

_TFDS_BATCH = 1024


def _read_source(source: Sequence[Any], image_key: str, label_key: str,
                 where: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads every example of a random-access source -> (uint8 [N, H, W, C], int32 [N]).

  Uses batched `__getitems__` where the source has it, else item-by-item indexing.
  """
  n = len(source)
  batched = getattr(source, "__getitems__", None)
  images: np.ndarray | None = None
  labels = np.empty(n, np.int64)
  for start in range(0, n, _TFDS_BATCH):
    keys = list(range(start, min(n, start + _TFDS_BATCH)))
    examples = batched(keys) if batched is not None else [source[k] for k in keys]
    if len(examples) != len(keys):
      raise DatasetError(f"{where}: asked for {len(keys)} examples, got {len(examples)}.")
    for k, ex in zip(keys, examples):
      if image_key not in ex or label_key not in ex:
        raise DatasetError(
            f"{where}: example {k} has features {sorted(ex)}; looked for image_key={image_key!r} "
            f"and label_key={label_key!r} (pass image_key=/label_key= to load_dataset).")
      img = np.asarray(ex[image_key])
      if img.ndim == 2:
        img = img[..., None]
      if images is None:
        if img.ndim != 3:
          raise DatasetError(f"{where}: feature {image_key!r} of example {k} has shape {img.shape}; "
                             "expected an image [H, W] or [H, W, C].")
        images = np.empty((n, *img.shape), img.dtype)
      if img.shape != images.shape[1:]:
        raise DatasetError(
            f"{where}: image of example {k} has shape {img.shape} but the first image has shape "
            f"{images.shape[1:]}; all images must share one shape (resize them when preparing).")
      images[k] = img
      labels[k] = np.asarray(ex[label_key])
  if images is None:
    raise DatasetError(f"{where}: the split holds no examples.")
  return _to_uint8_images(images, where), _to_int32_labels(labels, where)


def _tfds_version_dir(tfds: Any, catalog: str, data_dir: str | None) -> str | None:
  """The folder where TFDS looks for a prepared `catalog`, or None if it cannot be worked out."""
  try:
    return os.fspath(tfds.builder(catalog, data_dir=data_dir).data_dir)
  except Exception:  # pylint: disable=broad-except  # only used to word an error message
    return None


def _load_tfds(catalog: str, data_dir: str | None, image_key: str, label_key: str) -> Dataset:
  try:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DatasetError(f"dataset 'tfds:{catalog}' needs the tensorflow_datasets package: {e}") from e
  where_dir = data_dir if data_dir is not None else "the default TFDS data_dir (~/tensorflow_datasets)"
  prepare = (f"Prepare it beforehand (there is no download at load time), e.g. `tfds build {catalog} "
             f"--file_format=array_record{'' if data_dir is None else ' --data_dir=' + data_dir}`")
  try:
    sources = tfds.data_source(catalog, split=["train", "test"], data_dir=data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DatasetError(f"'{catalog}' is not a TFDS catalog name (dataset 'tfds:{catalog}'); see "
                       "https://www.tensorflow.org/datasets/catalog for accepted names.") from e
  except (NotImplementedError, FileNotFoundError, OSError, ValueError, KeyError,
          AssertionError) as e:
    version_dir = _tfds_version_dir(tfds, catalog, data_dir)
    if version_dir is not None and not os.path.exists(version_dir):
      found = f"looked for '{version_dir}', which does not exist"
    else:
      found = f"reading {version_dir or 'it'} failed with {type(e).__name__}: {e}"
    raise DatasetError(
        f"TFDS dataset '{catalog}' (splits 'train' and 'test', array_record format) is not "
        f"prepared under {where_dir}: {found}. {prepare}.") from e
  arrays = {}
  for split, source in zip(("train", "test"), sources):
    arrays[split] = _read_source(source, image_key, label_key,
                                 f"TFDS dataset '{catalog}', split '{split}'")
  info = getattr(sources[0], "dataset_info", None)
  if info is None:
    info = tfds.builder(catalog, data_dir=data_dir).info
  try:
    feature = info.features[label_key]
  except KeyError as e:
    raise DatasetError(f"TFDS dataset '{catalog}' has no feature {label_key!r}; features: "
                       f"{sorted(info.features.keys())}.") from e
  names = getattr(feature, "names", None)
  if not names:
    raise DatasetError(f"TFDS dataset '{catalog}': feature {label_key!r} is a "
                       f"{type(feature).__name__}, not a ClassLabel with class names.")
  return Dataset(x_train=arrays["train"][0], y_train=arrays["train"][1], x_test=arrays["test"][0],
                 y_test=arrays["test"][1], class_names=tuple(str(n) for n in names),
                 train_index=np.arange(arrays["train"][0].shape[0], dtype=np.int64),
                 name=f"tfds:{catalog}")
