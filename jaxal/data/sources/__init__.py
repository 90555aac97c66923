"""Image-classification datasets from local files: scikit-learn digits, IDX, image folders, npz, TFDS.

Every source returns a `Dataset` of uint8 images [N, H, W, C] and int32 labels [N]. Nothing is
rescaled, clipped or dropped silently: data that does not fit this form raises `DatasetError`, whose
message says what was looked for, where, and which values are accepted.

Entry point: `load_dataset(name, data_dir, ...)` with `name` one of `SOURCE_NAMES` or `tfds:<name>`.

One module per source (`digits`, `idx`, `folder`, `npz`, `tfds`), all built on `dataset` (the
`Dataset` class, `DatasetError` and the shared checks and conversions); this package dispatches.
"""
from __future__ import annotations

import os

from jaxal.data.sources.dataset import Dataset, DatasetError, check_labels
from jaxal.data.sources.digits import _load_digits
from jaxal.data.sources.folder import IMAGE_EXTENSIONS, _load_folder
from jaxal.data.sources.idx import FASHION_MNIST_CLASSES, IDX_FILES, _load_idx, read_idx
from jaxal.data.sources.npz import _load_npz
from jaxal.data.sources.npy import _load_npy
from jaxal.data.sources.tfds import _load_tfds
from jaxal.data.sources.unlabeled import UNKNOWN, load_unlabeled

__all__ = [
    "Dataset",
    "DatasetError",
    "FASHION_MNIST_CLASSES",
    "IDX_FILES",
    "IMAGE_EXTENSIONS",
    "SOURCE_NAMES",
    "check_labels",
    "load_dataset",
    "load_unlabeled",
    "UNKNOWN",
    "read_idx",
]

SOURCE_NAMES = ("digits", "idx", "folder", "npz", "npy", "tfds:<catalog name>")
"""Accepted values of `load_dataset(name=...)`; the last stands for e.g. `tfds:mnist`."""


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
      "npy": a folder of train_images.npy (uint8 [N, H, W, C], memory-mapped), train_labels.npy,
        test_images.npy, test_labels.npy and optionally class_names.txt (`sources.npy`).
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
  if name == "npy":   # a folder of .npy files; the training images stay memory-mapped
    if data_dir is None:
      raise DatasetError("dataset 'npy' needs data_dir (the folder of .npy files); got None.")
    return _load_npy(os.fspath(data_dir))
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
