"""The `unlabeled` source: a collection of images nobody has labeled, for a person to label.

    ds = load_unlabeled("scans/", classes=("benign", "malignant"), initial_labels="seed.csv")

`data_dir` is an image folder (images anywhere below it; folder names carry no meaning), a .zip of
one, or an .npz / .npy holding images without labels (`images` or `x`, or the one array of an
.npy). The class names come from `classes` or from a `classes.txt` beside the images (one name per
line). Images labeled before the run (`initial_labels`) are a CSV `path,label` (paths relative to
`data_dir` as listed in the export, or the file name when it is unique; the label a class name or
number) or a folder of `<class>/<image>` whose images join the pool labeled. Every other image has
the label `UNKNOWN` (-1); the test split is empty.

Images of different sizes are resized to one square size: `image_size` > 0 sets it; 0 keeps the
images' own size when they share one no larger than `MAX_KEPT_SIDE`, and otherwise resizes to
`DEFAULT_SIDE` (the loader returns the size it chose in the dataset's name, and the caller says it).
Grey images stay one channel unless some image has colour, then every image is RGB. The person sees
the original files (full resolution) on the web page; the network sees the resized arrays.
"""
from __future__ import annotations

import csv
import os

import numpy as np

from jaxal.data.sources.dataset import UNKNOWN, Dataset, DatasetError
from jaxal.data.sources.folder import (IMAGE_EXTENSIONS, _DirTree, _Tree, _ZipTree, _decode_image,
                                       _is_hidden)

MAX_KEPT_SIDE = 128
DEFAULT_SIDE = 64
CLASSES_FILE = "classes.txt"


def read_class_names(data_dir: str, classes: tuple[str, ...] | None) -> tuple[str, ...]:
  """`classes` when given, else the lines of `<data_dir>/classes.txt` (or beside a file)."""
  if classes:
    names = tuple(c.strip() for c in classes if c.strip())
  else:
    folder = data_dir if os.path.isdir(data_dir) else os.path.dirname(os.path.abspath(data_dir))
    path = os.path.join(folder, CLASSES_FILE)
    if not os.path.isfile(path):
      raise DatasetError(f"unlabeled pool {data_dir!r}: no class names; give {{classes}} (e.g. "
                         f"--classes=cat,dog) or write {path} with one name per line.")
    with open(path, encoding="utf-8-sig") as f:
      names = tuple(ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#"))
  if len(names) < 2:
    raise DatasetError(f"unlabeled pool: labeling needs at least two classes, got {list(names)}.")
  if len(set(names)) != len(names):
    raise DatasetError(f"unlabeled pool: a class name appears twice in {list(names)}.")
  lowered = {"skip", "unsure", "accept", "decline"} & {n.casefold() for n in names}
  if lowered:
    raise DatasetError(f"unlabeled pool: {sorted(lowered)} cannot be a class name (it is an "
                       "answer word).")
  return names


def _tree(data_dir: str) -> _Tree:
  if os.path.isdir(data_dir):
    return _DirTree(data_dir)
  if data_dir.lower().endswith(".zip"):
    return _ZipTree(data_dir)
  raise DatasetError(f"unlabeled pool {data_dir!r}: not a folder, .zip, .npz or .npy.")


def open_tree(root: str) -> _Tree:
  """Read access to the files of the pool at `root` (a folder or a zip)."""
  return _tree(root)


def _image_members(tree: _Tree) -> list[str]:
  return [m for m in tree.members() if m.lower().endswith(IMAGE_EXTENSIONS)
          and not _is_hidden(m.split("/"))]


def _resize(images: list[np.ndarray], image_size: int) -> tuple[np.ndarray, int | None]:
  """Stacks decoded images as uint8 [N, S, S, C]; returns (array, the side resized to or None)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  channels = 3 if any(im.shape[-1] == 3 for im in images) else 1
  shapes = {im.shape[:2] for im in images}
  side = image_size
  if not side:
    (h, w), = shapes if len(shapes) == 1 else ((0, 0),)
    if len(shapes) == 1 and max(h, w) <= MAX_KEPT_SIDE:
      side = None
    else:
      side = DEFAULT_SIDE
  out = []
  for im in images:
    if channels == 3 and im.shape[-1] == 1:
      im = np.repeat(im, 3, axis=-1)
    if side is not None and im.shape[:2] != (side, side):
      pil = Image.fromarray(im[..., 0] if channels == 1 else im)
      im = np.asarray(pil.resize((side, side), Image.BILINEAR))
      im = im[..., None] if im.ndim == 2 else im
    out.append(im)
  return np.stack(out).astype(np.uint8), side


def _read_arrays(path: str) -> np.ndarray:
  try:
    if path.lower().endswith(".npy"):
      return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as f:
      keys = [k for k in ("images", "x", "x_train") if k in f.files]
      if not keys:
        raise DatasetError(f"unlabeled pool {path!r}: no array named images, x or x_train "
                           f"(found {', '.join(f.files)}).")
      return f[keys[0]]
  except (OSError, ValueError) as e:
    raise DatasetError(f"unlabeled pool {path!r}: cannot read it ({e}).") from e


def _initial_from_csv(path: str, paths: list[str], names: tuple[str, ...]) -> dict[int, int]:
  by_path = {p: i for i, p in enumerate(paths)}
  by_base: dict[str, list[int]] = {}
  for i, p in enumerate(paths):
    by_base.setdefault(p.rsplit("/", 1)[-1], []).append(i)
  known = {}
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      rows = list(csv.reader(f))
  except OSError as e:
    raise DatasetError(f"{{initial_labels}} {path!r} cannot be read ({e.strerror or e}).") from e
  for line, row in enumerate(rows, 1):
    if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
      continue
    if [c.strip().casefold() for c in row[:2]] == ["path", "label"]:
      continue
    if len(row) < 2:
      raise DatasetError(f"{{initial_labels}} {path} line {line}: expected path,label, got "
                         f"{','.join(row)!r}.")
    p, label = row[0].strip(), row[1].strip()
    i = by_path.get(p)
    if i is None:
      hits = by_base.get(p.rsplit("/", 1)[-1], [])
      if len(hits) != 1:
        raise DatasetError(f"{{initial_labels}} {path} line {line}: {p!r} is "
                           f"{'not in the pool' if not hits else 'ambiguous (several files)'}; "
                           "use the path relative to the pool folder.")
      i = hits[0]
    c = names.index(label) if label in names else (
        int(label) if label.isdigit() and int(label) < len(names) else None)
    if c is None:
      raise DatasetError(f"{{initial_labels}} {path} line {line}: unknown class {label!r}; "
                         f"accepted: {', '.join(names)} or 0-{len(names) - 1}.")
    known[i] = c
  return known


def load_unlabeled(data_dir: str, classes: tuple[str, ...] | None = None,
                   initial_labels: str | None = None, image_size: int = 0) -> Dataset:
  """An unlabeled pool as a `Dataset` with `unlabeled=True` (see the module docstring).

  Raises DatasetError naming the parameter ({classes}, {initial_labels}, {image_size}) or the
  file at fault."""
  if not isinstance(image_size, int) or image_size < 0:
    raise DatasetError(f"{{image_size}} must be an integer >= 0 (0 = automatic), got "
                       f"{image_size!r}.")
  if not os.path.exists(data_dir):
    raise DatasetError(f"unlabeled pool: {data_dir!r} does not exist.")
  names = read_class_names(data_dir, classes)
  root = os.path.abspath(data_dir)
  if data_dir.lower().endswith((".npz", ".npy")) and os.path.isfile(data_dir):
    x = _read_arrays(data_dir)
    x = x[..., None] if x.ndim == 3 else x
    if x.ndim != 4 or x.dtype != np.uint8:
      raise DatasetError(f"unlabeled pool {data_dir!r}: images must be uint8 [N, H, W] or "
                         f"[N, H, W, C], got {x.dtype} {x.shape}.")
    decoded = list(x)
    paths = [f"#{i}" for i in range(len(decoded))]
  else:
    tree = _tree(data_dir)
    members = _image_members(tree)
    if not members:
      raise DatasetError(f"unlabeled pool {data_dir!r}: no images "
                         f"({', '.join(IMAGE_EXTENSIONS)}) found.")
    decoded = [_decode_image(tree.read(m), tree.describe(m)) for m in members]
    paths = list(members)
  known: dict[int, int] = {}
  if initial_labels and os.path.isdir(initial_labels):
    extra = _DirTree(initial_labels)
    for m in _image_members(extra):
      parts = m.split("/")
      if len(parts) != 2 or parts[0] not in names:
        raise DatasetError(f"{{initial_labels}} {initial_labels!r}: {m!r} is not "
                           f"<class>/<image> with a class of {', '.join(names)}.")
      known[len(decoded)] = names.index(parts[0])
      decoded.append(_decode_image(extra.read(m), extra.describe(m)))
      paths.append(os.path.join(os.path.abspath(initial_labels), *parts))
  elif initial_labels:
    known = _initial_from_csv(initial_labels, paths, names)
  x, side = _resize(decoded, image_size)
  y = np.full(len(x), UNKNOWN, np.int32)
  for i, c in known.items():
    y[i] = c
  size = f", resized to {side}x{side}" if side else ""
  return Dataset(x_train=x, y_train=y, x_test=np.zeros((0, *x.shape[1:]), np.uint8),
                 y_test=np.zeros(0, np.int32), class_names=names,
                 train_index=np.arange(len(x), dtype=np.int64),
                 name=f"unlabeled:{os.path.basename(root)}{size}", unlabeled=True,
                 paths=tuple(paths), root=root)


def read_original(ds: Dataset, i: int) -> tuple[bytes, str] | None:
  """The original file of pool item `i` of an unlabeled folder/zip pool as (bytes, media type), or
  None for array items (then show the array). `i` indexes the dataset's own list of paths, never a
  path from outside."""
  p = ds.paths[i]
  if p.startswith("#"):
    return None
  if os.path.isabs(p):   # an initial-labels image from another folder
    with open(p, "rb") as f:
      data = f.read()
  else:
    tree = _tree(ds.root)
    try:
      data = tree.read(p)
    finally:
      tree.close()
  ext = p.rsplit(".", 1)[-1].lower()
  media = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "bmp": "image/bmp"}
  return data, media.get(ext, "application/octet-stream")

