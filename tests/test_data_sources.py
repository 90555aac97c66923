"""Tests of jaxal.data.sources: every source against data the test writes itself (tmp_path).

Tests on real copies read the `datasets` folder from the environment variable JAXAL_SHARED_DATA and
are skipped when it is unset or lacks the data.
"""
from __future__ import annotations

import gzip
import io
import os
import struct
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxal.data.sources import Dataset, DatasetError, load_dataset
from jaxal.data.sources import folder as folder_source
from jaxal.data.sources import tfds as tfds_source

# ------------------------------------------------------------------------------------------------
# Dataset and load_dataset


def _tiny_dataset(**overrides) -> Dataset:
  fields = dict(x_train=np.zeros((4, 2, 2, 1), np.uint8), y_train=np.array([0, 1, 0, 1], np.int32),
                x_test=np.zeros((2, 2, 2, 1), np.uint8), y_test=np.array([0, 1], np.int32),
                class_names=("a", "b"), train_index=np.arange(4, dtype=np.int64), name="tiny")
  fields.update(overrides)
  return Dataset(**fields)


def test_dataset_properties():
  ds = _tiny_dataset()
  assert ds.num_classes == 2
  assert ds.image_shape == (2, 2, 1)


@pytest.mark.parametrize("overrides, match", [
    (dict(y_train=np.array([0, 1, 2, 1], np.int32)), r"label 2 at position 2 is outside \[0, 2\)"),
    (dict(y_test=np.array([0, -1], np.int32)), r"y_test.*label -1"),
    (dict(x_train=np.zeros((4, 2, 2), np.uint8)), r"x_train must be a uint8 array \[N, H, W, C\]"),
    (dict(x_train=np.zeros((4, 2, 2, 1), np.float32)), r"x_train must be a uint8"),
    (dict(y_train=np.array([0, 1, 0], np.int32)), r"y_train must be an int32 array of shape \(4,\)"),
    (dict(x_test=np.zeros((2, 3, 2, 1), np.uint8)), r"test images have shape \(3, 2, 1\)"),
    (dict(train_index=np.arange(4, dtype=np.int32)), r"train_index must be an int64"),
    (dict(class_names=("a", "a")), r"duplicates: \['a'\]"),
    (dict(class_names=["a", "b"]), r"tuple of str"),
])
def test_dataset_validation(overrides, match):
  with pytest.raises(DatasetError, match=match):
    _tiny_dataset(**overrides)


def test_unknown_name_lists_accepted_values():
  with pytest.raises(DatasetError, match=r"unknown dataset name 'cifar'.*digits, idx, folder, npz, npy, "
                     r"tfds:<catalog name>"):
    load_dataset("cifar")
  with pytest.raises(DatasetError, match="unknown dataset name 'tfds:'"):
    load_dataset("tfds:")


@pytest.mark.parametrize("name", ["idx", "folder", "npz"])
def test_data_dir_required(name):
  with pytest.raises(DatasetError, match=f"dataset '{name}' needs data_dir"):
    load_dataset(name)


def test_tfds_only_keys_rejected_elsewhere():
  with pytest.raises(DatasetError, match="image_key/label_key apply only to 'tfds:"):
    load_dataset("digits", image_key="img")


# ------------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_values_and_stratification():
  from sklearn.datasets import load_digits
  ref = load_digits()
  ds = load_dataset("digits", test_fraction=0.25, seed=3)
  n = ref.images.shape[0]
  assert ds.x_train.dtype == np.uint8 and ds.x_train.shape[1:] == (8, 8, 1)
  assert ds.y_train.dtype == np.int32 and ds.train_index.dtype == np.int64
  assert ds.x_train.shape[0] + ds.x_test.shape[0] == n
  assert ds.x_test.shape[0] == int(np.ceil(0.25 * n))
  np.testing.assert_array_equal(ds.train_index, np.arange(ds.x_train.shape[0]))
  assert ds.class_names == tuple(str(i) for i in range(10))
  # Values 0..16 -> round(v * 255 / 16): an independent lookup table.
  table = np.array([round(v * 255 / 16) for v in range(17)], np.uint8)
  assert table[16] == 255 and table[8] == 128 and table[1] == 16
  expected = table[ref.images.astype(int)][..., None]
  # Train + test is a permutation of the whole set: compare the sorted image bytes with labels.
  got = sorted(x.tobytes() + bytes([y]) for x, y in zip(
      np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])))
  want = sorted(x.tobytes() + bytes([y]) for x, y in zip(expected, ref.target))
  assert got == want
  # Stratified: every class's test share is within one item of 25%.
  for c in range(10):
    total = np.sum(ref.target == c)
    assert abs(np.sum(ds.y_test == c) - 0.25 * total) <= 1.0


def test_digits_split_deterministic_in_seed():
  a, b, c = (load_dataset("digits", seed=s) for s in (0, 0, 1))
  np.testing.assert_array_equal(a.x_test, b.x_test)
  np.testing.assert_array_equal(a.y_train, b.y_train)
  assert not np.array_equal(a.y_test, c.y_test)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, "0.2"])
def test_digits_bad_test_fraction(fraction):
  with pytest.raises(DatasetError, match=r"test_fraction must be a number in \(0, 1\)"):
    load_dataset("digits", test_fraction=fraction)


# ------------------------------------------------------------------------------------------------
# IDX


def _idx_bytes(arr: np.ndarray) -> bytes:
  return struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + \
      arr.astype(np.uint8).tobytes()


def _write(path, data: bytes, gz: bool):
  if gz:
    with gzip.open(str(path) + ".gz", "wb") as f:
      f.write(data)
  else:
    with open(path, "wb") as f:
      f.write(data)


def _write_idx_dir(directory, gz: bool, n_train=12, n_test=5, num_classes=10, seed=0):
  rng = np.random.default_rng(seed)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 4, 3)),
      "train-labels-idx1-ubyte": rng.integers(0, num_classes, n_train),
      "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 4, 3)),
      "t10k-labels-idx1-ubyte": rng.integers(0, num_classes, n_test),
  }
  os.makedirs(directory, exist_ok=True)
  for name, arr in arrays.items():
    _write(os.path.join(directory, name), _idx_bytes(arr), gz)
  return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
  arrays = _write_idx_dir(tmp_path / "digits_idx", gz)
  ds = load_dataset("idx", tmp_path / "digits_idx")
  np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
  np.testing.assert_array_equal(ds.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
  assert ds.x_train.shape == (12, 4, 3, 1) and ds.x_train.dtype == np.uint8
  assert ds.y_train.dtype == np.int32
  np.testing.assert_array_equal(ds.train_index, np.arange(12))
  assert ds.class_names == tuple(str(i) for i in range(10))
  assert ds.name == "idx:digits_idx"


def test_idx_class_names_from_file_and_fashion_dir(tmp_path):
  _write_idx_dir(tmp_path / "my-Fashion-copy", gz=True)
  ds = load_dataset("idx", tmp_path / "my-Fashion-copy")
  assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
  assert len(ds.class_names) == 10
  _write_idx_dir(tmp_path / "letters", gz=False, num_classes=3)
  (tmp_path / "letters" / "classes.txt").write_text("alpha\nbeta\ngamma\n\n")
  assert load_dataset("idx", tmp_path / "letters").class_names == ("alpha", "beta", "gamma")


def test_idx_label_beyond_class_names(tmp_path):
  _write_idx_dir(tmp_path / "d", gz=False, num_classes=10)
  (tmp_path / "d" / "classes.txt").write_text("a\nb\n")
  with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.*label \d+ at position \d+ is "
                     r"outside \[0, 2\).*classes.txt"):
    load_dataset("idx", tmp_path / "d")


def test_idx_missing_files_message(tmp_path):
  _write_idx_dir(tmp_path / "d", gz=True)
  os.remove(tmp_path / "d" / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(DatasetError) as e:
    load_dataset("idx", tmp_path / "d")
  msg = str(e.value)
  assert "t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz" in msg
  assert str(tmp_path / "d") in msg
  assert "train-images" not in msg.split("(expected")[0]  # only the missing one is reported missing
  with pytest.raises(DatasetError, match="is not a directory"):
    load_dataset("idx", tmp_path / "nowhere")


def test_idx_malformed_magic(tmp_path):
  _write_idx_dir(tmp_path / "d", gz=False)
  path = tmp_path / "d" / "train-images-idx3-ubyte"
  data = bytearray(path.read_bytes())
  data[3] = 2  # 0x00000802: two dimensions, not three
  path.write_bytes(bytes(data))
  with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte' has magic number 0x00000802; "
                     r"expected 0x00000803"):
    load_dataset("idx", tmp_path / "d")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_and_trailing(tmp_path, gz):
  _write_idx_dir(tmp_path / "d", gz=gz)
  name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
  path = tmp_path / "d" / name
  raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
  _write(tmp_path / "d" / "t10k-images-idx3-ubyte", raw[:-7], gz)
  with pytest.raises(DatasetError, match=rf"{name}' holds 53 data bytes, but its header declares "
                     r"dimensions \(5, 4, 3\), i.e. 60 bytes \(truncated\)"):
    load_dataset("idx", tmp_path / "d")
  _write(tmp_path / "d" / "t10k-images-idx3-ubyte", raw + b"\0", gz)
  with pytest.raises(DatasetError, match="trailing bytes"):
    load_dataset("idx", tmp_path / "d")


def test_idx_corrupt_gzip(tmp_path):
  _write_idx_dir(tmp_path / "d", gz=True)
  (tmp_path / "d" / "train-labels-idx1-ubyte.gz").write_bytes(b"not a gzip stream")
  with pytest.raises(DatasetError, match="cannot read IDX file .*train-labels-idx1-ubyte.gz"):
    load_dataset("idx", tmp_path / "d")


def test_idx_count_mismatch(tmp_path):
  _write_idx_dir(tmp_path / "d", gz=False)
  _write(tmp_path / "d" / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(11)), gz=False)
  with pytest.raises(DatasetError, match=r"train split .* holds 12 images but "
                     r"'train-labels-idx1-ubyte' holds 11 labels"):
    load_dataset("idx", tmp_path / "d")


# ------------------------------------------------------------------------------------------------
# Image folders and zips


def _image(rng, shape=(5, 4, 3)) -> np.ndarray:
  return rng.integers(0, 256, shape, dtype=np.uint8)


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
  buf = io.BytesIO()
  im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
  if mode is not None:
    im = im.convert(mode)
  im.save(buf, format="PNG")
  return buf.getvalue()


def _make_tree(files: dict[str, bytes], root=None, zip_path=None):
  """Writes {relative path: bytes} into a folder or a zip."""
  if zip_path is not None:
    with zipfile.ZipFile(zip_path, "w") as z:
      for rel, data in files.items():
        z.writestr(rel, data)
    return zip_path
  for rel, data in files.items():
    path = os.path.join(root, *rel.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
      f.write(data)
  return root


def _split_layout(rng, prefix="", train_dir="train", test_dir="test", shape=(5, 4, 3)):
  """Classes 'cat' (3 train, 2 test) and 'ant' (2 train, 1 test), file names out of order."""
  files, expect = {}, {"train": [], "test": []}
  counts = {"train": {"cat": 3, "ant": 2}, "test": {"cat": 2, "ant": 1}}
  for split, split_dir in (("train", train_dir), ("test", test_dir)):
    for cls in ("cat", "ant"):
      for i in reversed(range(counts[split][cls])):
        arr = _image(rng, shape)
        files[f"{prefix}{split_dir}/{cls}/{i:03d}.png"] = _png(arr)
        expect[split].append((cls, i, arr))
  # Expected order: classes sorted (ant=0, cat=1), files sorted by name within a class.
  for split in expect:
    expect[split].sort(key=lambda t: (t[0], t[1]))
  return files, expect


def _check_split_dataset(ds, expect):
  assert ds.class_names == ("ant", "cat")
  for split in ("train", "test"):
    x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
    np.testing.assert_array_equal(x, np.stack([a for _, _, a in expect[split]]))
    np.testing.assert_array_equal(y, [("ant", "cat").index(c) for c, _, _ in expect[split]])
  np.testing.assert_array_equal(ds.train_index, np.arange(5))


def test_folder_split_layout_dir_case_insensitive(tmp_path):
  files, expect = _split_layout(np.random.default_rng(0), train_dir="Training", test_dir="Test")
  files["README.txt"] = b"not an image, outside class folders: ignored"
  files["Training/.DS_Store"] = b"hidden"
  ds = load_dataset("folder", _make_tree(files, root=tmp_path / "fruits"))
  _check_split_dataset(ds, expect)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  assert ds.name == "folder:fruits"


@pytest.mark.parametrize("prefix", ["", "cifar/"])
def test_folder_split_layout_zip(tmp_path, prefix):
  files, expect = _split_layout(np.random.default_rng(1), prefix=prefix)
  ds = load_dataset("folder", _make_tree(files, zip_path=tmp_path / "data.zip"))
  _check_split_dataset(ds, expect)
  assert ds.name == "folder:data"


def _flat_layout(rng, per_class=8, prefix=""):
  files, by_class = {}, {}
  for cls in ("River", "Forest", "Highway"):
    by_class[cls] = []
    for i in range(per_class):
      arr = _image(rng, (3, 3, 3))
      files[f"{prefix}{cls}/{cls}_{i}.png"] = _png(arr)
      by_class[cls].append(arr)
  return files, by_class


@pytest.mark.parametrize("as_zip, prefix", [(False, ""), (True, ""), (True, "EuroSAT/"),
                                            (False, "EuroSAT/")])
def test_folder_no_split_stratified(tmp_path, as_zip, prefix):
  files, by_class = _flat_layout(np.random.default_rng(2), prefix=prefix)
  target = dict(zip_path=tmp_path / "e.zip") if as_zip else dict(root=tmp_path / "e")
  path = _make_tree(files, **target)
  ds = load_dataset("folder", path, test_fraction=0.25, seed=5)
  assert ds.class_names == ("Forest", "Highway", "River")
  assert ds.x_train.shape == (18, 3, 3, 3) and ds.x_test.shape == (6, 3, 3, 3)
  np.testing.assert_array_equal(np.bincount(ds.y_test), [2, 2, 2])
  # Every image lands in exactly one split with its class's label.
  got = sorted(x.tobytes() + bytes([y]) for x, y in zip(
      np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])))
  want = sorted(a.tobytes() + bytes([ds.class_names.index(c)])
                for c, arrs in by_class.items() for a in arrs)
  assert got == want
  again = load_dataset("folder", path, test_fraction=0.25, seed=5)
  np.testing.assert_array_equal(again.x_test, ds.x_test)


def test_folder_grayscale_and_palette(tmp_path):
  rng = np.random.default_rng(3)
  gray = {f"{s}/{c}/{i}.png": _png(_image(rng, (4, 4, 1)))
          for s in ("train", "test") for c in ("a", "b") for i in range(2)}
  ds = load_dataset("folder", _make_tree(gray, root=tmp_path / "gray"))
  assert ds.image_shape == (4, 4, 1)
  rgb = _image(rng, (4, 4, 3))
  pal = Image.fromarray(rgb).convert("P")
  expected = np.asarray(pal.convert("RGB"))
  buf = io.BytesIO()
  pal.save(buf, format="PNG")
  files = {f"{s}/{c}/0.png": buf.getvalue() for s in ("train", "test") for c in ("a", "b")}
  ds = load_dataset("folder", _make_tree(files, root=tmp_path / "pal"))
  assert ds.image_shape == (4, 4, 3)
  np.testing.assert_array_equal(ds.x_train[0], expected)


def test_folder_mismatched_shape_names_file(tmp_path):
  files, _ = _split_layout(np.random.default_rng(4))
  files["test/cat/007.png"] = _png(_image(np.random.default_rng(0), (6, 4, 3)))
  with pytest.raises(DatasetError, match=r"test/cat/007.png' has shape \(6, 4, 3\) .* expected "
                     r"shape is \(5, 4, 3\)"):
    load_dataset("folder", _make_tree(files, root=tmp_path / "d"))
  files["test/cat/007.png"] = _png(_image(np.random.default_rng(0), (5, 4, 1)))
  with pytest.raises(DatasetError, match=r"007.png' in zip .* has shape \(5, 4, 1\)"):
    load_dataset("folder", _make_tree(files, zip_path=tmp_path / "d.zip"))


def test_folder_layout_errors(tmp_path):
  rng = np.random.default_rng(5)
  files, _ = _split_layout(rng)
  bad = dict(files)
  del bad["test/ant/000.png"]
  with pytest.raises(DatasetError, match=r"train \['ant', 'cat'\], test \['cat'\]"):
    load_dataset("folder", _make_tree(bad, root=tmp_path / "a"))
  bad = dict(files, **{"val/cat/0.png": _png(_image(rng))})
  with pytest.raises(DatasetError, match=r"other image folder\(s\) \['val'\]"):
    load_dataset("folder", _make_tree(bad, root=tmp_path / "b"))
  bad = {k: v for k, v in files.items() if not k.startswith("test/")}
  with pytest.raises(DatasetError, match=r"exactly one test folder \(accepted names: test\|testing"):
    load_dataset("folder", _make_tree(bad, zip_path=tmp_path / "c.zip"))
  bad = dict(files, **{"train/cat/notes.tif": b"x"})
  with pytest.raises(DatasetError, match=r"not images of an accepted type.*notes.tif.*\.jpg"):
    load_dataset("folder", _make_tree(bad, root=tmp_path / "d"))
  bad = dict(files, **{"train/cat/deeper/0.png": _png(_image(rng))})
  with pytest.raises(DatasetError, match="deeper/0.png' is not at the expected depth"):
    load_dataset("folder", _make_tree(bad, root=tmp_path / "e"))
  bad = dict(files, **{"train/cat/broken.png": b"not a png"})
  with pytest.raises(DatasetError, match="cannot decode image .*broken.png"):
    load_dataset("folder", _make_tree(bad, root=tmp_path / "f"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(DatasetError, match="no image files found"):
    load_dataset("folder", tmp_path / "empty")
  with pytest.raises(DatasetError, match="does not exist"):
    load_dataset("folder", tmp_path / "missing")
  (tmp_path / "x.zip").write_bytes(b"no zip")
  with pytest.raises(DatasetError, match="is a file but not a zip"):
    load_dataset("folder", tmp_path / "x.zip")


def test_folder_cache_round_trip(tmp_path, monkeypatch):
  files, expect = _split_layout(np.random.default_rng(6), prefix="wrap/")
  zip_path = _make_tree(files, zip_path=tmp_path / "d.zip")
  cache = tmp_path / "cache"
  first = load_dataset("folder", zip_path, cache_dir=cache)
  _check_split_dataset(first, expect)
  cached = sorted(os.listdir(cache))
  assert len(cached) == 1 and cached[0].startswith("folder-d.zip-") and cached[0].endswith(".npz")

  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache holds the arrays")

  with monkeypatch.context() as m:
    m.setattr(folder_source, "_decode_image", no_decoding)
    second = load_dataset("folder", zip_path, cache_dir=cache)
  _check_split_dataset(second, expect)
  assert second.class_names == first.class_names

  # A changed source (new size and mtime) gets a new entry, decoded afresh.
  files2, expect2 = _split_layout(np.random.default_rng(7), prefix="wrap/")
  files2["wrap/train/ant/999.png"] = _png(_image(np.random.default_rng(8)))
  _make_tree(files2, zip_path=zip_path)
  os.utime(zip_path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
  third = load_dataset("folder", zip_path, cache_dir=cache)
  assert third.x_train.shape[0] == 6
  assert len(os.listdir(cache)) == 2  # no temporary files left behind


def test_folder_cache_dir_source_and_corrupt_cache(tmp_path):
  files, by_class = _flat_layout(np.random.default_rng(9))
  root = _make_tree(files, root=tmp_path / "flat")
  cache = tmp_path / "cache"
  a = load_dataset("folder", root, cache_dir=cache, seed=1)
  (entry,) = os.listdir(cache)
  b = load_dataset("folder", root, cache_dir=cache, seed=1)
  np.testing.assert_array_equal(a.x_train, b.x_train)
  # Splits are drawn after the cache, so another seed reuses the same entry.
  c = load_dataset("folder", root, cache_dir=cache, seed=2)
  assert os.listdir(cache) == [entry] and not np.array_equal(a.x_test, c.x_test)
  (cache / entry).write_bytes(b"garbage")
  with pytest.warns(UserWarning, match="ignoring unreadable dataset cache"):
    d = load_dataset("folder", root, cache_dir=cache, seed=1)
  np.testing.assert_array_equal(a.x_test, d.x_test)
  # A file changed deep inside the folder changes the key.
  (root / "River" / "River_0.png").write_bytes(_png(_image(np.random.default_rng(10), (3, 3, 3))))
  load_dataset("folder", root, cache_dir=cache)
  assert len(os.listdir(cache)) == 2


# ------------------------------------------------------------------------------------------------
# npz


def test_npz_official_split(tmp_path):
  rng = np.random.default_rng(11)
  x_train = rng.integers(0, 256, (6, 3, 2), dtype=np.uint8)
  x_test = rng.integers(0, 256, (2, 3, 2), dtype=np.uint8)
  np.savez(tmp_path / "d.npz", x_train=x_train, y_train=np.array([0, 1, 2, 0, 1, 2]),
           x_test=x_test.astype(np.float32), y_test=np.array([[2], [0]], np.int64),
           class_names=np.array(["a", "b", "c"]))
  ds = load_dataset("npz", tmp_path / "d.npz")
  np.testing.assert_array_equal(ds.x_train[..., 0], x_train)
  np.testing.assert_array_equal(ds.x_test[..., 0], x_test)
  np.testing.assert_array_equal(ds.y_test, [2, 0])
  assert ds.class_names == ("a", "b", "c") and ds.x_test.dtype == np.uint8
  assert ds.name == "npz:d"
  # A directory holding exactly one .npz works too.
  assert load_dataset("npz", tmp_path).x_train.shape == (6, 3, 2, 1)


def test_npz_pooled_layout(tmp_path):
  rng = np.random.default_rng(12)
  images = rng.integers(0, 256, (20, 2, 2, 3)).astype(np.int64)
  labels = np.repeat([0, 1, 2, 3], 5)
  np.savez(tmp_path / "p.npz", images=images, labels=labels)
  ds = load_dataset("npz", tmp_path / "p.npz", test_fraction=0.2, seed=0)
  assert ds.class_names == ("0", "1", "2", "3")
  np.testing.assert_array_equal(np.bincount(ds.y_test), [1, 1, 1, 1])
  assert ds.x_train.shape == (16, 2, 2, 3)
  got = sorted(x.tobytes() for x in np.concatenate([ds.x_train, ds.x_test]))
  assert got == sorted(x.astype(np.uint8).tobytes() for x in images)


@pytest.mark.parametrize("arrays, match", [
    (dict(images=np.full((4, 2, 2), 0.5), labels=np.array([0, 1, 0, 1])), "non-integral values"),
    (dict(images=np.full((4, 2, 2), np.nan), labels=np.array([0, 1, 0, 1])), "NaN/inf"),
    (dict(images=np.full((4, 2, 2), 256), labels=np.array([0, 1, 0, 1])),
     r"range over \[256, 256\], outside \[0, 255\]"),
    (dict(images=np.zeros((4, 2), np.uint8), labels=np.array([0, 1, 0, 1])),
     r"shape \[N, H, W\] or \[N, H, W, C\]"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.array([0., 1, 0, 1])),
     "labels have dtype float64"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.array([0, 1, 2, 1]),
          class_names=np.array(["a", "b"])), r"label 2 at position 2 is outside \[0, 2\)"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.array([0, 1, 0])),
     "holds 4 images but 'labels' holds 3 labels"),
    (dict(images=np.zeros((4, 2, 2), np.uint8), labels=np.array([0, 1, 0, 1]),
          x_val=np.zeros(1)), r"unexpected keys \['x_val'\]"),
    (dict(x_train=np.zeros((4, 2, 2), np.uint8), labels=np.array([0, 1, 0, 1])),
     "accepted key sets: x_train, y_train, x_test, y_test"),
])
def test_npz_errors(tmp_path, arrays, match):
  np.savez(tmp_path / "bad.npz", **arrays)
  with pytest.raises(DatasetError, match=match):
    load_dataset("npz", tmp_path / "bad.npz")


def test_npz_path_errors(tmp_path):
  with pytest.raises(DatasetError, match="exactly one .npz file, found none"):
    load_dataset("npz", tmp_path)
  np.savez(tmp_path / "a.npz", images=np.zeros((2, 1, 1), np.uint8), labels=np.array([0, 1]))
  np.savez(tmp_path / "b.npz", images=np.zeros((2, 1, 1), np.uint8), labels=np.array([0, 1]))
  with pytest.raises(DatasetError, match=r"found \['a.npz', 'b.npz'\]"):
    load_dataset("npz", tmp_path)
  np.savez(tmp_path / "o.npz", images=np.zeros((2, 1, 1), np.uint8), labels=np.array([0, 1]),
           class_names=np.array(["a", "b"], dtype=object))
  with pytest.raises(DatasetError, match="class_names must be saved as a str array"):
    load_dataset("npz", tmp_path / "o.npz")


# ------------------------------------------------------------------------------------------------
# TFDS


@pytest.fixture
def tfds_mock(monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  from tensorflow_datasets.testing import mocking
  # tfds 4.9.10's mock assigns `functools.partial(_getitems, generator=...)` as an instance
  # attribute of a MagicMock, so `source.__getitems__(keys)` arrives without `self` and fails.
  # Replace the module function it wraps with one that does not need `self` (test-only fix).
  monkeypatch.setattr(mocking, "_getitems", lambda record_keys, generator, serialized=False:
                      [generator[k] for k in record_keys])
  return tfds


def test_tfds_mock_mnist(tfds_mock, tmp_path):
  with tfds_mock.testing.mock_data(num_examples=13):
    ds = load_dataset("tfds:mnist", tmp_path)
  assert ds.name == "tfds:mnist"
  assert ds.x_train.shape == (13, 28, 28, 1) and ds.x_test.shape == (13, 28, 28, 1)
  assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
  assert ds.class_names == tuple(str(i) for i in range(10))
  assert ds.y_train.min() >= 0 and ds.y_train.max() < 10
  np.testing.assert_array_equal(ds.train_index, np.arange(13))


def test_tfds_wrong_feature_key(tfds_mock, tmp_path):
  with tfds_mock.testing.mock_data(num_examples=3):
    with pytest.raises(DatasetError, match=r"features \['image', 'label'\]; "
                       r"looked for image_key='img'"):
      load_dataset("tfds:mnist", tmp_path, image_key="img")


def test_tfds_not_prepared(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  with pytest.raises(DatasetError) as e:
    load_dataset("tfds:mnist", tmp_path / "tfds")
  msg = str(e.value)
  assert "not prepared" in msg and str(tmp_path / "tfds" / "mnist") in msg
  assert "tfds build mnist --file_format=array_record" in msg
  with pytest.raises(DatasetError, match="'no_such_dataset_x' is not a TFDS catalog name"):
    load_dataset("tfds:no_such_dataset_x", tmp_path / "tfds")


class _ListSource(list):
  """A random-access source without __getitems__ (the item-by-item path)."""


def test_read_source_item_by_item():
  rng = np.random.default_rng(13)
  examples = _ListSource({"image": _image(rng, (3, 3, 1)), "label": np.int64(i % 2)}
                         for i in range(2500))
  assert not hasattr(examples, "__getitems__")
  x, y = tfds_source._read_source(examples, "image", "label", "test source")
  np.testing.assert_array_equal(x, np.stack([e["image"] for e in examples]))
  np.testing.assert_array_equal(y, np.arange(2500) % 2)
  examples[1500] = {"image": _image(rng, (4, 3, 1)), "label": 0}
  with pytest.raises(DatasetError, match=r"example 1500 has shape \(4, 3, 1\) but the first image "
                     r"has shape \(3, 3, 1\)"):
    tfds_source._read_source(examples, "image", "label", "test source")


# ------------------------------------------------------------------------------------------------
# Real copies (JAXAL_SHARED_DATA = the `datasets` folder)


def _shared(name: str) -> str:
  root = os.environ.get("JAXAL_SHARED_DATA")
  if not root:
    pytest.skip("JAXAL_SHARED_DATA is not set")
  path = os.path.join(root, name)
  if not os.path.exists(path):
    pytest.skip(f"{path} does not exist")
  return path


def test_shared_mnist():
  ds = load_dataset("idx", _shared("mnist"))
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.class_names == tuple(str(i) for i in range(10))
  np.testing.assert_array_equal(np.bincount(ds.y_train),
                                [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
  assert ds.y_train[0] == 5 and ds.y_test[0] == 7


def test_shared_fashion_mnist():
  ds = load_dataset("idx", _shared("fashion_mnist"))
  assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
  assert ds.class_names == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                            "Shirt", "Sneaker", "Bag", "Ankle boot")
  np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)


@pytest.mark.slow
def test_shared_cifar10_zip(request, tmp_path):
  path = _shared("cifar10-jpeg.zip")
  if getattr(request.config, "cache", None) is not None:
    cache = request.config.cache.mkdir("jaxal-dataset-cache")  # persists across pytest runs
  else:  # `-p no:cacheprovider`: decoded afresh into this test's folder
    cache = tmp_path / "jaxal-dataset-cache"
  ds = load_dataset("folder", path, cache_dir=str(cache))
  assert ds.x_train.shape == (50000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
  assert ds.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                            "horse", "ship", "truck")
  np.testing.assert_array_equal(np.bincount(ds.y_train), [5000] * 10)
  np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
  with zipfile.ZipFile(path) as z:  # spot check: first test image of 'truck' decoded as stored
    ref = np.asarray(Image.open(io.BytesIO(z.read("cifar10/test/truck/0000.jpg"))).convert("RGB"))
  np.testing.assert_array_equal(ds.x_test[9000], ref)
