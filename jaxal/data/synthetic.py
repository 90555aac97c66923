"""Synthetic pools: Gaussian class clusters of any size and dimension, for tests and scale runs."""
from __future__ import annotations

import numpy as np


def gaussian_pool(n: int, num_classes: int, dim: int, seed: int = 0,
                  scale: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
  """`n` points in `num_classes` Gaussian clusters: class centres ~ N(0, scale^2 I), points ~
  N(centre, I); labels uniform. Returns (float32 [n, 1, dim, 1] "images", int32 [n] labels)."""
  rng = np.random.default_rng(seed)
  centers = rng.normal(scale=scale, size=(num_classes, dim))
  y = rng.integers(0, num_classes, n).astype(np.int32)
  x = (centers[y] + rng.normal(size=(n, dim))).astype(np.float32)
  return x.reshape(n, 1, dim, 1), y
