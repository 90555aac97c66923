"""Tests of jaxal.data.transforms against independent numpy references."""
from __future__ import annotations

import json

import numpy as np
import pytest

from jaxal.data import (Dataset, DatasetError, channel_stats, load_class_map, merge_classes,
                        normalize, subsample, subset_classes)


def _dataset(seed=0) -> Dataset:
  """4 classes; train labels 0,1,2,3,0,1,2,3,...(12 items); every image's pixels = its position."""
  y_train = np.tile(np.arange(4, dtype=np.int32), 3)
  y_test = np.array([3, 2, 1, 0, 3], np.int32)
  x_train = np.broadcast_to(np.arange(12, dtype=np.uint8)[:, None, None, None], (12, 2, 2, 1)).copy()
  x_test = np.broadcast_to(np.arange(100, 105, dtype=np.uint8)[:, None, None, None],
                           (5, 2, 2, 1)).copy()
  return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                 class_names=("cat", "dog", "car", "ship"),
                 train_index=np.arange(100, 112, dtype=np.int64), name="toy")


# ------------------------------------------------------------------------------------------------
# subset_classes


def test_subset_relabels_in_given_order():
  ds = _dataset()
  sub = subset_classes(ds, ["ship", 1])
  assert sub.class_names == ("ship", "dog")
  keep = np.isin(ds.y_train, [3, 1])
  np.testing.assert_array_equal(sub.train_index, ds.train_index[keep])
  np.testing.assert_array_equal(sub.x_train, ds.x_train[keep])
  # ship (3) -> 0, dog (1) -> 1
  np.testing.assert_array_equal(sub.y_train, np.where(ds.y_train[keep] == 3, 0, 1))
  np.testing.assert_array_equal(sub.x_test[:, 0, 0, 0], [100, 102, 104])
  np.testing.assert_array_equal(sub.y_test, [0, 1, 0])
  assert sub.y_train.dtype == np.int32 and sub.train_index.dtype == np.int64
  # Subsetting again keeps the original positions.
  again = subset_classes(sub, ["dog"])
  np.testing.assert_array_equal(again.train_index, [101, 105, 109])
  np.testing.assert_array_equal(again.y_train, [0, 0, 0])


def test_subset_errors():
  ds = _dataset()
  with pytest.raises(DatasetError, match=r"class\(es\) \['bird', 7\] are not in dataset 'toy'; "
                     r"accepted \(index=name\): 0='cat', 1='dog', 2='car', 3='ship'"):
    subset_classes(ds, ["cat", "bird", 7])
  with pytest.raises(DatasetError, match=r"\['dog'\] are requested more than once"):
    subset_classes(ds, ["dog", 1])
  with pytest.raises(DatasetError, match="no classes given"):
    subset_classes(ds, [])
  with pytest.raises(DatasetError, match="must be a sequence"):
    subset_classes(ds, "cat")
  with pytest.raises(DatasetError, match="indices \\(int\\) or names \\(str\\)"):
    subset_classes(ds, [1.0])
  with pytest.raises(DatasetError, match="got True of type bool"):
    subset_classes(ds, [True])
  no_car = subset_classes(ds, ["cat", "dog", "ship"])
  stripped = Dataset(x_train=no_car.x_train, y_train=no_car.y_train, x_test=no_car.x_test,
                     y_test=no_car.y_test, class_names=("cat", "dog", "ship", "car"),
                     train_index=no_car.train_index, name="toy")
  with pytest.raises(DatasetError, match=r"\['car'\] would have no training items"):
    subset_classes(stripped, ["cat", "car"])


# ------------------------------------------------------------------------------------------------
# merge_classes


def test_merge_groups_in_mapping_order():
  ds = _dataset()
  merged = merge_classes(ds, {"vehicle": ["car", 3], "animal": [0, "dog"]})
  assert merged.class_names == ("vehicle", "animal")
  expected = np.array([1, 1, 0, 0])[ds.y_train]
  np.testing.assert_array_equal(merged.y_train, expected)
  np.testing.assert_array_equal(merged.y_test, np.array([1, 1, 0, 0])[ds.y_test])
  np.testing.assert_array_equal(merged.train_index, ds.train_index)
  np.testing.assert_array_equal(merged.x_train, ds.x_train)


def test_merge_drop_unmapped():
  ds = _dataset()
  with pytest.raises(DatasetError, match=r"source class\(es\) \['dog', 'ship'\] of dataset 'toy' are "
                     r"in no group.*drop_unmapped=True"):
    merge_classes(ds, {"a": ["cat"], "b": ["car"]})
  merged = merge_classes(ds, {"a": ["cat"], "b": ["car"]}, drop_unmapped=True)
  keep = np.isin(ds.y_train, [0, 2])
  np.testing.assert_array_equal(merged.train_index, ds.train_index[keep])
  np.testing.assert_array_equal(merged.y_train, (ds.y_train[keep] == 2).astype(np.int32))
  np.testing.assert_array_equal(merged.x_test[:, 0, 0, 0], [101, 103])
  np.testing.assert_array_equal(merged.y_test, [1, 0])


def test_merge_errors():
  ds = _dataset()
  with pytest.raises(DatasetError, match=r"source class 'dog' \(index 1\) is listed in group 'x' "
                     r"and again in group 'y'"):
    merge_classes(ds, {"x": ["cat", "dog"], "y": [1, "car", "ship"]})
  with pytest.raises(DatasetError, match=r"group 'x'.*\['horse'\] are not in dataset 'toy'"):
    merge_classes(ds, {"x": ["horse"]}, drop_unmapped=True)
  with pytest.raises(DatasetError, match="group 'x' lists no source classes"):
    merge_classes(ds, {"x": [], "y": [0, 1, 2, 3]})
  with pytest.raises(DatasetError, match="non-empty mapping"):
    merge_classes(ds, {})
  with pytest.raises(DatasetError, match="must be a sequence"):
    merge_classes(ds, {"x": "cat"}, drop_unmapped=True)


def test_load_class_map(tmp_path):
  path = tmp_path / "map.json"
  path.write_text(json.dumps({"vehicle": ["car", "ship"], "animal": ["cat", 1]}))
  mapping = load_class_map(path)
  assert list(mapping) == ["vehicle", "animal"]
  merged = merge_classes(_dataset(), mapping)
  assert merged.class_names == ("vehicle", "animal")
  path.write_text('{"a": ["cat"], "a": ["dog"]}')
  with pytest.raises(DatasetError, match=r"map.json' repeats key\(s\) \['a'\]"):
    load_class_map(path)
  path.write_text('{"a": ["cat"],')
  with pytest.raises(DatasetError, match="map.json' is not valid JSON"):
    load_class_map(path)
  path.write_text('{"a": "cat"}')
  with pytest.raises(DatasetError, match="map.json': the value of 'a' must be a list"):
    load_class_map(path)
  path.write_text('["cat"]')
  with pytest.raises(DatasetError, match="must hold a non-empty JSON object"):
    load_class_map(path)
  with pytest.raises(DatasetError, match="nope.json' does not exist"):
    load_class_map(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------------
# channel_stats / normalize


def test_channel_stats_matches_float64_reference():
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (37, 5, 6, 3), dtype=np.uint8)
  x[..., 2] = rng.integers(200, 256, (37, 5, 6))  # channels with different statistics
  ref = x.astype(np.float64) / 255.0
  for chunk in (1, 7, 4096):  # chunking must not change the result
    mean, std = channel_stats(x, chunk_items=chunk)
    assert mean.dtype == np.float32 and std.dtype == np.float32 and mean.shape == (3,)
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=(0, 1, 2)), rtol=1e-6)


def test_channel_stats_constant_and_errors():
  x = np.full((4, 2, 2, 1), 51, np.uint8)
  mean, std = channel_stats(x)
  np.testing.assert_allclose(mean, [0.2], rtol=1e-6)
  np.testing.assert_array_equal(std, [0.0])
  with pytest.raises(DatasetError, match="expects uint8 images"):
    channel_stats(x.astype(np.float32))
  with pytest.raises(DatasetError, match=r"N >= 1, got shape \(0, 2, 2, 1\)"):
    channel_stats(np.zeros((0, 2, 2, 1), np.uint8))


def test_normalize_matches_reference_and_zero_std():
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (3, 4, 4, 2), dtype=np.uint8)
  mean, std = np.array([0.4, 0.6]), np.array([0.25, 0.0])
  out = normalize(x, mean, std)
  assert out.dtype == np.float32 and out.shape == x.shape
  ref = x.astype(np.float64) / 255.0 - mean
  ref[..., 0] /= 0.25  # channel 1: std 0 -> divided by 1
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
  m, s = channel_stats(x)
  z = normalize(x, m, s).astype(np.float64)
  np.testing.assert_allclose(z.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.std(axis=(0, 1, 2)), 1.0, atol=1e-5)


def test_normalize_errors():
  x = np.zeros((2, 2, 2, 3), np.uint8)
  with pytest.raises(DatasetError, match=r"mean must have shape \(3,\)"):
    normalize(x, [0.5], [1, 1, 1])
  with pytest.raises(DatasetError, match="std must be >= 0"):
    normalize(x, [0.5] * 3, [1, -1, 1])
  with pytest.raises(DatasetError, match="std holds NaN/inf"):
    normalize(x, [0.5] * 3, [1, np.nan, 1])
  with pytest.raises(DatasetError, match="expects uint8 images"):
    normalize(x.astype(np.float32), [0.5] * 3, [1] * 3)


# ------------------------------------------------------------------------------------------------
# subsample (reduced-scale runs: --train_limit / --test_limit)


def _unbalanced(n=1000, seed=0) -> Dataset:
  rng = np.random.default_rng(seed)
  y = rng.choice(3, n, p=[0.6, 0.3, 0.1]).astype(np.int32)
  x = (np.arange(n) % 256).astype(np.uint8)[:, None, None, None]
  return Dataset(x_train=x, y_train=y, x_test=x[:200], y_test=y[:200],
                 class_names=("a", "b", "c"), train_index=np.arange(n, dtype=np.int64) + 7,
                 name="unbalanced")


def test_subsample_keeps_class_shares_order_and_positions():
  ds = _unbalanced()
  sub = subsample(ds, train_size=100, test_size=50)
  assert len(sub.y_train) == 100 and len(sub.y_test) == 50
  for full, part in ((ds.y_train, sub.y_train), (ds.y_test, sub.y_test)):
    want = np.bincount(full, minlength=3) / len(full) * len(part)
    assert np.all(np.abs(np.bincount(part, minlength=3) - want) <= 1)
  # kept items in their original order, pixels and labels travelling with their positions
  pos = sub.train_index - 7
  assert np.all(np.diff(pos) > 0)
  np.testing.assert_array_equal(sub.y_train, ds.y_train[pos])
  np.testing.assert_array_equal(sub.x_train, ds.x_train[pos])
  # the same sample every time; another seed gives another sample
  np.testing.assert_array_equal(subsample(ds, 100, 50).train_index, sub.train_index)
  assert not np.array_equal(subsample(ds, 100, 50, seed=1).train_index, sub.train_index)
  # 0 keeps a split whole
  assert len(subsample(ds, train_size=100).y_test) == 200


def test_subsample_near_the_whole_split_and_with_a_single_item_class():
  ds = _unbalanced()
  assert len(subsample(ds, train_size=999).y_train) == 999          # leaves out one item
  y = ds.y_train.copy()
  y[np.flatnonzero(y == 2)[1:]] = 1                                 # class "c" keeps one item
  one = Dataset(x_train=ds.x_train, y_train=y, x_test=ds.x_test, y_test=ds.y_test,
                class_names=ds.class_names, train_index=ds.train_index, name="one")
  sub = subsample(one, train_size=30)
  assert np.bincount(sub.y_train, minlength=3)[2] == 1              # every class keeps an item
  assert len(sub.y_train) == 30


@pytest.mark.parametrize("kw,needle", [({"train_size": 1001}, "train_size=1001.*0 \\(all\\) to 1000"),
                                       ({"test_size": -1}, "test_size=-1"),
                                       ({"train_size": 2}, "smaller than the 3 classes")])
def test_subsample_refuses_sizes_it_cannot_honour(kw, needle):
  with pytest.raises(DatasetError, match=needle):
    subsample(_unbalanced(), **kw)


def test_train_and_test_limits_reach_the_run(tmp_path):
  from jaxal import presets as configs
  from jaxal import experiment
  c = configs.load("default").to_dict()
  c.update(train_limit=600, test_limit=150)
  ds = experiment.prepare_dataset(c)
  assert len(ds.y_train) == 600 and len(ds.y_test) == 150
  c.update(train_limit=10 ** 6)
  with pytest.raises(experiment.ConfigError, match="--train_limit"):
    experiment.prepare_dataset(c)
