"""Transforms of a `Dataset`: class subsets and merges, per-channel statistics and normalization.

Class transforms relabel to 0..k-1 and keep `train_index` (each kept training item's position in the
source's original order), so results stay traceable to the loaded data.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxal.data.sources import Dataset, DatasetError

__all__ = ["channel_stats", "load_class_map", "merge_classes", "normalize", "subsample",
           "subset_classes"]


def _accepted(ds: Dataset) -> str:
  return ", ".join(f"{i}={n!r}" for i, n in enumerate(ds.class_names))


def _resolve_class(ds: Dataset, c: Any) -> int | None:
  """A class given as an index (int) or a name (str) -> its index, or None if absent."""
  if isinstance(c, str):
    try:
      return ds.class_names.index(c)
    except ValueError:
      return None
  if isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
    return int(c) if 0 <= int(c) < ds.num_classes else None
  raise DatasetError(f"dataset '{ds.name}': classes must be given as indices (int) or names (str), "
                     f"got {c!r} of type {type(c).__name__}.")


def _resolve_all(ds: Dataset, classes: Sequence[Any], what: str) -> list[int]:
  if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
    raise DatasetError(f"{what} must be a sequence of class indices or names, got {classes!r}.")
  resolved = [_resolve_class(ds, c) for c in classes]
  absent = [c for c, r in zip(classes, resolved) if r is None]
  if absent:
    raise DatasetError(f"{what}: class(es) {absent} are not in dataset '{ds.name}'; accepted "
                       f"(index=name): {_accepted(ds)}.")
  return resolved  # type: ignore[return-value]


def _relabel(ds: Dataset, old_to_new: np.ndarray, class_names: tuple[str, ...]) -> Dataset:
  """Applies int [C] `old_to_new` (-1 = drop the class) to both splits."""
  keep_train = old_to_new[ds.y_train] >= 0
  keep_test = old_to_new[ds.y_test] >= 0
  return dataclasses.replace(
      ds,
      x_train=ds.x_train[keep_train],
      y_train=old_to_new[ds.y_train[keep_train]].astype(np.int32),
      x_test=ds.x_test[keep_test],
      y_test=old_to_new[ds.y_test[keep_test]].astype(np.int32),
      class_names=class_names,
      train_index=ds.train_index[keep_train])


def _stratified(y: np.ndarray, size: int, seed: int) -> np.ndarray:
  """Sorted indices of a class-stratified random sample of `size` of the labels `y`: class c gets
  its proportional share size * n_c / n rounded down, the items left go to the largest remainders
  (ties to the lower class), every present class keeps at least one item (taken from the largest
  allocations), and each class's items are a seeded random choice among its members."""
  n = len(y)
  if size >= n:
    return np.arange(n)
  classes, counts = np.unique(y, return_counts=True)
  exact = size * counts / n
  alloc = np.floor(exact).astype(np.int64)
  order = np.lexsort((np.arange(len(classes)), -(exact - alloc)))
  alloc[order[:size - alloc.sum()]] += 1
  for c in np.flatnonzero(alloc == 0):                      # size >= number of classes here
    alloc[np.argmax(alloc)] -= 1
    alloc[c] = 1
  rng = np.random.default_rng(seed)
  keep = [rng.choice(np.flatnonzero(y == c), a, replace=False) for c, a in zip(classes, alloc)]
  return np.sort(np.concatenate(keep))


def subsample(ds: Dataset, train_size: int = 0, test_size: int = 0, seed: int = 0) -> Dataset:
  """Keeps a class-stratified random sample of `train_size` training and `test_size` test items
  (0 = all), for runs at a reduced scale. The sample depends only on `seed` and the labels, so every
  run of an experiment (every strategy and AL seed) sees the same data; kept items stay in their
  original order and `train_index` keeps their original positions.

  Raises:
    DatasetError: a size larger than the split, or one so small that a class would get no item.
  """
  out = {}
  for split, size, flag in (("train", train_size, "{train_size}"),
                            ("test", test_size, "{test_size}")):
    y = getattr(ds, f"y_{split}")
    if size < 0 or size > len(y):
      raise DatasetError(f"{flag}={size}: the {split} split of '{ds.name}' has {len(y)} items; "
                         f"accepted: 0 (all) to {len(y)}.")
    present = int(np.sum(np.bincount(y) > 0))
    if 0 < size < present:
      raise DatasetError(f"{flag}={size} is smaller than the {present} classes of the {split} "
                         "split; every class needs an item.")
    out[split] = _stratified(y, size, seed) if size else np.arange(len(y))
  tr, te = out["train"], out["test"]
  return dataclasses.replace(ds, x_train=ds.x_train[tr], y_train=ds.y_train[tr],
                             x_test=ds.x_test[te], y_test=ds.y_test[te],
                             train_index=ds.train_index[tr])


def _check_has_train_items(ds: Dataset, old_to_new: np.ndarray, class_names: tuple[str, ...],
                           what: str) -> None:
  counts = np.bincount(old_to_new[ds.y_train][old_to_new[ds.y_train] >= 0],
                       minlength=len(class_names))
  empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
  if empty:
    raise DatasetError(f"{what}: class(es) {empty} would have no training items in dataset "
                       f"'{ds.name}'.")


def subset_classes(ds: Dataset, classes: Sequence[int | str]) -> Dataset:
  """Keeps the items of the listed classes, relabelled 0..k-1 in the order given.

  Args:
    ds: the dataset, C classes.
    classes: k distinct classes, each an index in [0, C) or a name in `ds.class_names`.

  Returns:
    A dataset with k classes (`class_names` in the given order); x_train [N', H, W, C],
    y_train [N'], train_index [N'] = the kept items' original positions, same for test.

  Raises:
    DatasetError: empty request, unknown classes (the message lists the accepted ones), a class
      requested twice, or a requested class without training items.
  """
  what = "subset_classes(classes=...)"
  resolved = _resolve_all(ds, classes, what)
  if not resolved:
    raise DatasetError(f"{what}: no classes given; accepted (index=name): {_accepted(ds)}.")
  dup = sorted({ds.class_names[r] for r in resolved if resolved.count(r) > 1})
  if dup:
    raise DatasetError(f"{what}: class(es) {dup} are requested more than once (as given: "
                       f"{list(classes)}).")
  old_to_new = np.full(ds.num_classes, -1, np.int64)
  old_to_new[resolved] = np.arange(len(resolved))
  names = tuple(ds.class_names[r] for r in resolved)
  _check_has_train_items(ds, old_to_new, names, what)
  return _relabel(ds, old_to_new, names)


def merge_classes(ds: Dataset, mapping: Mapping[str, Sequence[int | str]], *,
                  drop_unmapped: bool = False) -> Dataset:
  """Merges source classes into new classes.

  Args:
    ds: the dataset, C classes.
    mapping: new class name -> the source classes (indices or names) it holds; the new labels
      0..k-1 follow the mapping's order.
    drop_unmapped: if True, items of source classes in no group are dropped; if False (default)
      such classes are an error.

  Returns:
    A dataset with k = len(mapping) classes; train_index keeps the kept items' original positions.

  Raises:
    DatasetError: empty mapping or group, unknown source classes, a source class in two groups (or
      twice in one), unmapped classes without drop_unmapped, or a new class without training items.
  """
  what = "merge_classes(mapping=...)"
  if not isinstance(mapping, Mapping) or not mapping:
    raise DatasetError(f"{what} must be a non-empty mapping of new class name -> source classes, "
                       f"got {mapping!r}.")
  old_to_new = np.full(ds.num_classes, -1, np.int64)
  group_of: dict[int, str] = {}
  for new_label, (new_name, members) in enumerate(mapping.items()):
    if not isinstance(new_name, str) or not new_name:
      raise DatasetError(f"{what}: new class names must be non-empty str, got {new_name!r}.")
    resolved = _resolve_all(ds, members, f"{what}, group {new_name!r}")
    if not resolved:
      raise DatasetError(f"{what}: group {new_name!r} lists no source classes.")
    for r in resolved:
      if r in group_of:
        raise DatasetError(
            f"{what}: source class {ds.class_names[r]!r} (index {r}) is listed in group "
            f"{group_of[r]!r} and again in group {new_name!r}; each source class may belong to one "
            "group only.")
      group_of[r] = new_name
      old_to_new[r] = new_label
  unmapped = [ds.class_names[i] for i in np.flatnonzero(old_to_new < 0)]
  if unmapped and not drop_unmapped:
    raise DatasetError(f"{what}: source class(es) {unmapped} of dataset '{ds.name}' are in no "
                       "group; add them to a group or pass drop_unmapped=True to drop their items.")
  names = tuple(mapping.keys())
  _check_has_train_items(ds, old_to_new, names, what)
  return _relabel(ds, old_to_new, names)


def load_class_map(path: str | os.PathLike) -> dict[str, list[int | str]]:
  """Reads a JSON class map {"new name": ["old name" or old index, ...], ...} for `merge_classes`.

  Raises:
    DatasetError: missing or unreadable file, invalid JSON, duplicate keys, or values that are not
      lists of class names/indices; the message names the file.
  """
  path = os.fspath(path)

  def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
      raise DatasetError(f"class map file '{path}' repeats key(s) {dups}; each new class may "
                         "appear once.")
    return dict(pairs)

  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f, object_pairs_hook=no_duplicates)
  except FileNotFoundError as e:
    raise DatasetError(f"class map file '{path}' does not exist.") from e
  except (OSError, UnicodeDecodeError) as e:
    raise DatasetError(f"cannot read class map file '{path}': {e}") from e
  except json.JSONDecodeError as e:
    raise DatasetError(f"class map file '{path}' is not valid JSON: {e}") from e
  if not isinstance(data, dict) or not data:
    raise DatasetError(f"class map file '{path}' must hold a non-empty JSON object "
                       '{"new name": ["old name", ...], ...}, got ' + f"{type(data).__name__}.")
  for key, value in data.items():
    if not isinstance(value, list) or not all(
        isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
      raise DatasetError(f"class map file '{path}': the value of {key!r} must be a list of class "
                         f"names (str) or indices (int), got {value!r}.")
  return data


def _check_images(x: np.ndarray, what: str) -> None:
  if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim < 1:
    desc = f"{x.dtype} array of shape {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
    raise DatasetError(f"{what} expects uint8 images [..., C] (values 0..255), got {desc}.")


def channel_stats(x: np.ndarray, chunk_items: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of uint8 images, in the [0, 1] scale (x / 255).

  Exact: sums and sums of squares are accumulated as integers over chunks of `chunk_items` images
  (memory ~ chunk_items * H * W * C * 8 bytes), so a 50000x32x32x3 array needs no float copy.

  Args:
    x: uint8 [N, H, W, C] images, N >= 1.
    chunk_items: images per chunk.

  Returns:
    (mean, std), float32 [C] each; std is the population standard deviation (ddof=0), like np.std.
  """
  _check_images(x, "channel_stats")
  if x.ndim != 4 or x.shape[0] == 0:
    raise DatasetError(f"channel_stats expects uint8 images [N, H, W, C] with N >= 1, got shape "
                       f"{x.shape}.")
  c = x.shape[-1]
  total = np.zeros(c, np.int64)
  total_sq = np.zeros(c, np.int64)
  step = max(1, int(chunk_items))
  for start in range(0, x.shape[0], step):
    chunk = x[start:start + step].reshape(-1, c).astype(np.int64)
    total += chunk.sum(axis=0)
    total_sq += (chunk * chunk).sum(axis=0)
  n = x.size // c
  mean, std = np.empty(c, np.float64), np.empty(c, np.float64)
  for i in range(c):  # Python ints: exact, no overflow
    s, ss = int(total[i]), int(total_sq[i])
    mean[i] = s / (n * 255)
    std[i] = np.sqrt((ss * n - s * s) / (n * n)) / 255
  return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: np.ndarray, mean: np.ndarray | Sequence[float],
              std: np.ndarray | Sequence[float]) -> np.ndarray:
  """(x / 255 - mean) / std per channel, as float32.

  A std of 0 (a constant channel) is replaced by 1, so that channel is only centred.

  Args:
    x: uint8 [..., C] images.
    mean: [C] channel means in the [0, 1] scale (see `channel_stats`).
    std: [C] channel standard deviations in the [0, 1] scale, >= 0.

  Returns:
    float32 array of x's shape.
  """
  _check_images(x, "normalize")
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  c = x.shape[-1]
  for name, v in (("mean", mean), ("std", std)):
    if v.shape != (c,):
      raise DatasetError(f"normalize: {name} must have shape ({c},) for images [..., {c}], got "
                         f"{v.shape}.")
    if not np.all(np.isfinite(v)):
      raise DatasetError(f"normalize: {name} holds NaN/inf: {v}.")
  if np.any(std < 0):
    raise DatasetError(f"normalize: std must be >= 0, got {std}.")
  std = np.where(std == 0, np.float32(1), std)
  out = x.astype(np.float32)
  np.divide(out, np.float32(255), out=out)
  out -= mean
  out /= std
  return out
