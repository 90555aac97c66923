"""The `folder` source: an image folder or a .zip of one, planned from its files, decoded, cached.

A `_Tree` gives read access to the files of a directory or a zip, `_plan_folder` works out the
layout (split folders or one pool, class folders, images), `_decode_plan` decodes the images, and
`_read_cache`/`_write_cache` keep the decoded arrays under `cache_dir` keyed by a fingerprint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from jaxal.data.sources.dataset import Dataset, DatasetError, _from_pool

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""File extensions (case-insensitive) read by the `folder` source."""

_TRAIN_DIR_NAMES = ("train", "training")
_TEST_DIR_NAMES = ("test", "testing")
_FOLDER_CACHE_VERSION = 1


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
