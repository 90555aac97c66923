"""The `tfds:<catalog name>` source: a TFDS dataset already prepared in array_record format."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxal.data.sources.dataset import Dataset, DatasetError, _to_int32_labels, _to_uint8_images

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
