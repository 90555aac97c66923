"""The `digits` source: scikit-learn's bundled 8x8 digits, scaled to uint8 and split by class."""
from __future__ import annotations

import numpy as np

from jaxal.data.sources.dataset import Dataset, _default_names, _from_pool


def _load_digits(test_fraction: float, seed: int) -> Dataset:
  from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel
  bunch = load_digits()
  images = np.asarray(bunch.images, np.float64)  # [1797, 8, 8], integral values 0..16
  x = np.round(images * 255.0 / 16.0).astype(np.uint8)[..., None]
  y = np.asarray(bunch.target).astype(np.int32)
  return _from_pool(x, y, _default_names(10), test_fraction, seed, "digits",
                    "dataset 'digits' (scikit-learn)")
