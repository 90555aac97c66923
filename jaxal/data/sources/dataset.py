"""The in-memory `Dataset`, its `DatasetError`, and the checks and conversions every source shares.

Images become uint8 [N, H, W, C] and labels int32 [N] here, never by rescaling, clipping or
dropping: values that do not fit raise `DatasetError`. Sources without an official test split draw
a stratified one with `_from_pool`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxal.errors import ArgumentError


UNKNOWN = -1
"""The label of an image of an unlabeled pool that nobody has labeled yet."""


class DatasetError(ArgumentError):
  """A dataset could not be found, read or validated; the message says what, where and what is
  accepted (parameters in braces, as `jaxal.errors.ArgumentError`)."""


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
    unlabeled: True for a pool whose labels are unknown (`jaxal.data.sources.unlabeled`):
      `y_train` is `UNKNOWN` (-1) except for the images labeled before the run, and the test split
      is empty. A person labels it (`--oracle=web|human|terminal`).
    paths: for an unlabeled pool, each training image's file (relative to `root`, '/'-separated,
      or a zip member) or "#<i>" for an array item; the labels export and the web page use them.
    root: the folder, zip or array file the paths are relative to.

  Construction validates dtypes, ranks, lengths and label ranges and raises `DatasetError`.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  class_names: tuple[str, ...]
  train_index: np.ndarray
  name: str
  unlabeled: bool = False
  paths: tuple[str, ...] = ()
  root: str = ""

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
      check_labels(y[y != UNKNOWN] if self.unlabeled and split == "train" else y,
                   len(self.class_names), f"{where}, y_{split}")
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


def _ranges(values: Sequence[int], limit: int = 12) -> str:
  """Sorted ints as "0-9, 42" (runs joined by a dash), at most `limit` pieces."""
  pieces, values = [], sorted(int(v) for v in values)
  start = prev = None
  for v in values + [None]:
    if v is not None and prev is not None and v == prev + 1:
      prev = v
      continue
    if start is not None:
      pieces.append(str(start) if start == prev else f"{start}-{prev}")
    start = prev = v
  more = f", ... ({len(pieces) - limit} more)" if len(pieces) > limit else ""
  return ", ".join(pieces[:limit]) + more


def check_labels_cover_classes(ys: Sequence[np.ndarray], where: str) -> None:
  """Without class names the classes are 0..max(label): raises `DatasetError` naming the label
  values found and the classes that have no image (a stray label, or labels that are not
  consecutive), which would otherwise surface later as an unsatisfiable balanced split."""
  y = np.concatenate([np.asarray(v).ravel() for v in ys]) if ys else np.zeros(0, np.int32)
  if y.size == 0:
    return
  values, counts = np.unique(y, return_counts=True)
  num_classes = int(values[-1]) + 1
  missing = sorted(set(range(num_classes)) - {int(v) for v in values})
  if not missing:
    return
  rare = [f"{int(v)} ({int(c)} image{'s' if c > 1 else ''})" for v, c in zip(values, counts)
          if c <= max(3, y.size // 1000)]
  rare_text = f"; rare values: {', '.join(rare[:6])}" if rare else ""
  raise DatasetError(
      f"{where}: the label values found are {_ranges(values)} ({values.size} distinct{rare_text}), "
      f"so without 'class_names' the classes are 0-{num_classes - 1} and classes "
      f"{_ranges(missing)} ({len(missing)} of {num_classes}) have no images. Relabel to "
      f"0-{values.size - 1} (e.g. np.unique(labels, return_inverse=True)), remove stray labels, "
      "or save 'class_names'.")


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
