"""Splits of a training set: a labeled validation set, a balanced initial labeled set, the pool.

The pool is the whole training array; the splits are index arrays and masks over it, so every seed and
every round sees arrays of the same shape (see DESIGN.md, "Static shapes").
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxal.data.sources import DatasetError


@dataclasses.dataclass(frozen=True)
class Splits:
  """Index sets over a training array of N items.

  Attributes:
    initial: int64 [initial_size], the initial labeled set (balanced over classes).
    val: int64 [val_size], the labeled validation set (never selectable, never trained on).
    selectable: bool [N], True for items that may be labeled (everything but `val`).
  """
  initial: np.ndarray
  val: np.ndarray
  selectable: np.ndarray


def balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator,
                     num_classes: int, exclude: np.ndarray | None = None,
                     what: str = "initial_size") -> np.ndarray:
  """Draws `n` distinct indices with per-class counts differing by at most one.

  Every class gets `n // num_classes` items; the remainder `n % num_classes` goes, one each, to
  distinct classes drawn at random. Items where `exclude` is True are never drawn.

  Args:
    labels: int [N] class of every item.
    n: how many indices to draw.
    rng: numpy generator (the only source of randomness).
    num_classes: C; classes are 0..C-1.
    exclude: optional bool [N] of items that may not be drawn.
    what: the flag or argument name used in error messages.

  Returns:
    int64 [n] distinct indices in random order.
  """
  labels = np.asarray(labels)
  if n < 0:
    raise DatasetError(f"{what} must be >= 0, got {n}.")
  allowed = np.ones(labels.shape[0], bool) if exclude is None else ~np.asarray(exclude, bool)
  per_class = np.full(num_classes, n // num_classes)
  per_class[rng.permutation(num_classes)[: n % num_classes]] += 1
  chosen = []
  for c in range(num_classes):
    candidates = np.flatnonzero(allowed & (labels == c))
    if candidates.size < per_class[c]:
      raise DatasetError(
          f"{what}={n} needs {per_class[c]} items of class {c} but only {candidates.size} are "
          f"available; lower {what} (at most {num_classes * _min_count(labels, allowed, num_classes)} "
          "keeps every class balanced).")
    chosen.append(rng.choice(candidates, size=per_class[c], replace=False))
  out = np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, np.int64)
  return out[rng.permutation(out.size)]


def _min_count(labels, allowed, num_classes):
  return int(min(np.sum(allowed & (labels == c)) for c in range(num_classes)))


def make_splits(labels: np.ndarray, num_classes: int, initial_size: int, val_size: int,
                seed: int) -> Splits:
  """The validation set (balanced, drawn first), then the balanced initial set from the rest."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
  labels = np.asarray(labels)
  val = balanced_indices(labels, val_size, rng, num_classes, what="val_size")
  selectable = np.ones(labels.shape[0], bool)
  selectable[val] = False
  initial = balanced_indices(labels, initial_size, rng, num_classes, exclude=~selectable,
                             what="initial_size")
  return Splits(initial=initial, val=val, selectable=selectable)


def known_splits(labels: np.ndarray) -> Splits:
  """The splits of a pool without labels: the items already labeled (label >= 0) are the initial
  set, there is no validation set, and everything is selectable."""
  labels = np.asarray(labels)
  return Splits(initial=np.flatnonzero(labels >= 0).astype(np.int64), val=np.zeros(0, np.int64),
                selectable=np.ones(labels.shape[0], bool))
