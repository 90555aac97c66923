"""The `npz` source: one .npz file of train/test arrays, or of a pool of images/labels to split."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from jaxal.data.sources.dataset import (Dataset, DatasetError, _default_names, _describe_array,
                                        _from_pool, _to_int32_labels, _to_uint8_images,
                                        check_labels, check_labels_cover_classes)

_NPZ_LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("images", "labels"))


def _check_zip(path: str) -> None:
  """An .npz is a zip archive (np.savez); anything else is refused naming what it is instead."""
  try:
    with open(path, "rb") as f:
      head = f.read(8)
  except OSError as e:
    raise DatasetError(f"cannot read npz file '{path}': {e}") from e
  if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
    return
  if head.startswith(b"\x93NUMPY"):
    what = "a single-array .npy file"
  elif not head:
    what = "empty"
  elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
    what = "a text file"
  else:
    what = f"a file starting with bytes {head!r}"
  raise DatasetError(f"'{path}' is not an npz file (it is {what}); an .npz is the zip archive "
                     "np.savez writes, e.g. np.savez(path, images=..., labels=...).")


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
  _check_zip(path)
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
    check_labels_cover_classes(list(ys.values()), where)
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
