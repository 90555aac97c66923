"""Input noise on a fraction of the images, as in the constrained-setting paper (Gaussian noise and
salt-and-pepper noise applied to 10% of the images). Pure NumPy with an explicit seed.

`add_noise(x, kind, fraction, std=, amount=, seed=)` returns a noisy copy and the indices of the
images it changed; `noise_dataset` applies it to a `Dataset`'s training (pool) and/or test images.

Valid range: [0, 255] for uint8 images; `value_range` (default [0, 1]) for float images.
  gaussian:        every element of a chosen image gets x + e, e ~ N(0, (std * (hi - lo))^2), i.e.
                   `std` is a fraction of the valid range (std=0.1 on uint8 is 25.5 grey levels). The
                   result is clipped to the valid range (so the *applied* noise is smaller near the
                   ends of the range; `std` is the noise before clipping) and, for uint8, rounded
                   to the nearest integer.
  salt_and_pepper: every pixel (all channels together) of a chosen image is, independently with
                   probability `amount`, set to an extreme: half of them (by a fair coin each) to
                   the maximum ("salt": 255, or hi), the others to the minimum ("pepper": 0, or lo).
                   No other value is written, so nothing needs clipping.
  none:            no image is changed (an unchanged copy, no indices).

The chosen images are exactly round(fraction * N) distinct ones, drawn uniformly without replacement.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxal.data.sources import Dataset

KINDS = ("none", "gaussian", "salt_and_pepper")
SPLITS = ("train", "test")


def _range(x: np.ndarray, value_range: tuple[float, float]) -> tuple[float, float]:
  if x.dtype == np.uint8:
    return 0.0, 255.0
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"add_noise(x=...): images must be uint8 (0..255) or floating point (in "
                     f"value_range), got dtype {x.dtype}.")
  lo, hi = (float(v) for v in value_range)
  if not lo < hi:
    raise ValueError(f"add_noise(value_range=...): need low < high, got {value_range!r}.")
  return lo, hi


def add_noise(x: np.ndarray, kind: str = "gaussian", fraction: float = 0.1, *, std: float = 0.1,
              amount: float = 0.05, seed: int | np.random.Generator,
              value_range: tuple[float, float] = (0.0, 1.0),
              chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """Noise on `fraction` of the images of `x`.

  Args:
    x: images [N, ...] (usually [N, H, W, C]): uint8, or float in `value_range`.
    kind: "gaussian", "salt_and_pepper" or "none" (see the module docstring).
    fraction: share of the images to change, in [0, 1]; round(fraction * N) images are changed.
    std: Gaussian noise standard deviation as a fraction of the valid range (>= 0).
    amount: salt-and-pepper: probability that a pixel is replaced, in [0, 1].
    seed: an int seed or a `np.random.Generator` (consumed).
    value_range: (low, high) valid range of float images (ignored for uint8).
    chunk: images processed at a time (bounds the float temporaries' memory).
  Returns:
    (noisy copy of x, same shape and dtype; int64 [round(fraction * N)] sorted indices of the
    changed images). Images not listed are byte-identical to the input.
  Raises:
    ValueError: unknown kind, fraction/amount outside [0, 1], negative std, unsupported dtype.
  """
  if kind not in KINDS:
    raise ValueError(f"add_noise(kind=...) / --noise: unknown noise {kind!r}; accepted: "
                     f"{', '.join(KINDS)}.")
  if not (isinstance(fraction, (int, float, np.integer, np.floating)) and 0.0 <= fraction <= 1.0):
    raise ValueError(f"add_noise(fraction=...) / --noise_fraction: must be a number in [0, 1], got "
                     f"{fraction!r}.")
  if not (np.isfinite(std) and std >= 0):
    raise ValueError(f"add_noise(std=...) / --noise_std: must be >= 0 (a fraction of the valid "
                     f"range), got {std!r}.")
  if not 0.0 <= amount <= 1.0:
    raise ValueError(f"add_noise(amount=...) / --noise_amount: must be in [0, 1], got {amount!r}.")
  x = np.asarray(x)
  if x.ndim < 2:
    raise ValueError(f"add_noise(x=...): expected images [N, ...], got shape {x.shape}.")
  lo, hi = _range(x, value_range)
  rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
  out = x.copy()
  n = x.shape[0]
  if kind == "none":
    return out, np.zeros((0,), np.int64)
  chosen = np.sort(rng.choice(n, size=int(round(fraction * n)), replace=False)).astype(np.int64)
  for start in range(0, len(chosen), max(1, int(chunk))):
    idx = chosen[start:start + chunk]
    imgs = x[idx]
    if kind == "gaussian":
      noisy = imgs.astype(np.float64) + rng.normal(0.0, std * (hi - lo), imgs.shape)
      noisy = np.clip(noisy, lo, hi)
      if x.dtype == np.uint8:
        noisy = np.rint(noisy)
      out[idx] = noisy.astype(x.dtype)
    else:
      pixel_shape = imgs.shape[:-1] if imgs.ndim >= 4 else imgs.shape  # all channels together
      hit = rng.random(pixel_shape) < amount
      salt = rng.random(pixel_shape) < 0.5
      if imgs.ndim >= 4:
        hit, salt = hit[..., None], salt[..., None]
      value = np.where(salt, np.asarray(hi, x.dtype), np.asarray(lo, x.dtype))
      out[idx] = np.where(hit, value, imgs)
  return out, chosen


def noise_dataset(ds: Dataset, kind: str = "gaussian", fraction: float = 0.1, *,
                  std: float = 0.1, amount: float = 0.05, seed: int,
                  splits: Sequence[str] = ("train",)) -> tuple[Dataset, dict[str, np.ndarray]]:
  """`add_noise` on the uint8 images of `ds` ("train": the pool, "test": the test set).

  Each split draws from its own stream (`np.random.default_rng([seed, i])`, i its position in
  `SPLITS`), so adding the test split does not change the pool's noise.
  Returns (the dataset with noisy images, {split: indices of the changed images in that split}).
  """
  bad = [s for s in splits if s not in SPLITS]
  if bad or isinstance(splits, str):
    raise ValueError(f"noise_dataset(splits=...): unknown split(s) {bad or splits!r}; accepted: "
                     f"{', '.join(SPLITS)}.")
  changes, changed = {}, {}
  for i, split in enumerate(SPLITS):
    if split in splits:
      noisy, idx = add_noise(getattr(ds, f"x_{split}"), kind, fraction, std=std, amount=amount,
                             seed=np.random.default_rng([seed, i]))
      changes[f"x_{split}"], changed[split] = noisy, idx
  return dataclasses.replace(ds, **changes), changed


__all__ = ["KINDS", "add_noise", "noise_dataset"]
