"""Input noise on a fraction of the images (`jaxal.data.noise`)."""
import numpy as np
import pytest

from jaxal.data import Dataset, add_noise, noise_dataset


def _images(n=200, shape=(6, 6, 3), seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def _changed(a, b):
  return np.flatnonzero(np.any((a != b).reshape(len(a), -1), axis=1))


@pytest.mark.parametrize("kind", ["gaussian", "salt_and_pepper"])
@pytest.mark.parametrize("n,fraction", [(200, 0.1), (37, 0.25), (50, 0.0), (20, 1.0)])
def test_exactly_the_fraction_is_changed_and_the_rest_is_byte_identical(kind, n, fraction):
  x = _images(n, shape=(8, 8, 3))
  keep = x.copy()
  noisy, idx = add_noise(x, kind, fraction, std=0.2, amount=0.3, seed=1)
  np.testing.assert_array_equal(x, keep)  # the input is not modified
  assert noisy.dtype == x.dtype and noisy.shape == x.shape
  assert len(idx) == round(fraction * n) == len(set(idx.tolist()))
  np.testing.assert_array_equal(_changed(noisy, x), idx)  # exactly the listed images changed
  rest = np.setdiff1d(np.arange(n), idx)
  assert noisy[rest].tobytes() == x[rest].tobytes()


def test_same_seed_same_noise_different_seed_different():
  x = _images()
  a, ia = add_noise(x, "gaussian", seed=3)
  b, ib = add_noise(x, "gaussian", seed=np.random.default_rng(3))
  c, ic = add_noise(x, "gaussian", seed=4)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ia, ib)
  assert not np.array_equal(ia, ic)


def test_salt_and_pepper_writes_only_the_extremes_of_uint8():
  x = np.full((40, 10, 10, 3), 128, np.uint8)
  noisy, idx = add_noise(x, "salt_and_pepper", 0.5, amount=0.2, seed=0)
  changed = noisy[idx]
  new = changed != 128
  assert set(np.unique(changed[new]).tolist()) == {0, 255}  # salt and pepper, nothing else
  # whole pixels: all channels of a pixel together
  per_pixel = new.any(-1)
  np.testing.assert_array_equal(per_pixel, new.all(-1))
  # rate of replaced pixels is `amount`; 20 images x 100 pixels -> 5 standard errors
  m = per_pixel.size
  assert abs(per_pixel.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / m)
  salt = (changed[..., 0] == 255).sum() / per_pixel.sum()
  assert abs(salt - 0.5) < 5 * np.sqrt(0.25 / per_pixel.sum())


def test_salt_and_pepper_on_floats_uses_the_value_range():
  x = np.full((10, 5, 5, 1), 0.5, np.float32)
  noisy, idx = add_noise(x, "salt_and_pepper", 1.0, amount=0.5, seed=2)
  assert set(np.unique(noisy).tolist()) == {0.0, 0.5, 1.0}
  noisy2, _ = add_noise(x * 4 - 2, "salt_and_pepper", 1.0, amount=0.5, seed=2,
                        value_range=(-2.0, 2.0))
  assert set(np.unique(noisy2).tolist()) == {-2.0, 0.0, 2.0}


@pytest.mark.parametrize("std", [0.05, 0.2])
def test_gaussian_noise_has_the_asked_standard_deviation_on_floats(std):
  # Mid-range inputs: the noise e is clipped only where |e| > 0.5 (10 sd for std=0.05: never;
  # 2.5 sd for std=0.2), and then to exactly 0 or 1, so the unclipped elements show e itself.
  x = np.full((100, 16, 16, 1), 0.5, np.float64)
  noisy, idx = add_noise(x, "gaussian", 0.5, std=std, seed=0)
  vals = noisy[idx].ravel()
  e = vals - 0.5
  clipped = (vals == 0.0) | (vals == 1.0)
  m = e.size
  if std == 0.05:
    assert not clipped.any()
    # the sample sd of m normal draws has standard error ~ std / sqrt(2m); allow 5 of them
    assert abs(e.std() - std) < 5 * std / np.sqrt(2 * m)
    assert abs(e.mean()) < 5 * std / np.sqrt(m)
  else:
    p = 2 * 0.0062096653  # P(|Z| > 2.5): the share clipped
    assert abs(clipped.mean() - p) < 5 * np.sqrt(p * (1 - p) / m)
    # the unclipped noise is a normal truncated at 2.5 sd: sd = std sqrt(1 - 2 a phi(a) / (1 - p))
    trunc_sd = std * np.sqrt(1 - 2 * 2.5 * 0.0175283005 / (1 - p))
    inside = e[~clipped]
    assert abs(inside.std() - trunc_sd) < 5 * trunc_sd / np.sqrt(2 * inside.size)


def test_gaussian_noise_std_is_a_fraction_of_the_uint8_range_and_rounds():
  x = np.full((100, 16, 16, 1), 128, np.uint8)
  noisy, idx = add_noise(x, "gaussian", 0.5, std=0.05, seed=0)  # 12.75 grey levels
  e = noisy[idx].astype(np.float64).ravel() - 128
  m = e.size
  want = np.sqrt((0.05 * 255) ** 2 + 1 / 12)  # rounding to integers adds uniform(-.5, .5) error
  assert abs(e.std() - want) < 5 * want / np.sqrt(2 * m)


def test_gaussian_noise_is_clipped_to_the_valid_range():
  x = np.full((20, 8, 8, 1), 250, np.uint8)
  noisy, idx = add_noise(x, "gaussian", 1.0, std=0.2, seed=0)
  assert noisy.dtype == np.uint8
  assert (noisy[idx] == 255).mean() > 0.4  # ~49% of the draws exceed +5 and are clipped at 255
  xf = np.ones((20, 8, 8, 1), np.float32)
  noisy, _ = add_noise(xf, "gaussian", 1.0, std=0.3, seed=0)
  assert noisy.min() >= 0.0 and noisy.max() == 1.0 and noisy.dtype == np.float32


def test_none_changes_nothing():
  x = _images()
  noisy, idx = add_noise(x, "none", 0.5, seed=0)
  assert idx.shape == (0,) and noisy.tobytes() == x.tobytes() and noisy is not x


@pytest.mark.parametrize("kwargs,message", [
    ({"kind": "speckle"}, r"add_noise\(kind=...\) / --noise: unknown noise 'speckle'; accepted: "
                          r"none, gaussian, salt_and_pepper"),
    ({"fraction": 1.5}, r"add_noise\(fraction=...\) / --noise_fraction: must be a number in \[0, 1\]"
                        r", got 1.5"),
    ({"fraction": -0.1}, r"--noise_fraction: must be a number in \[0, 1\]"),
    ({"std": -1.0}, r"--noise_std: must be >= 0"),
    ({"amount": 2.0}, r"--noise_amount: must be in \[0, 1\], got 2.0"),
])
def test_bad_arguments_name_the_argument_and_the_accepted_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    add_noise(_images(10), **{"seed": 0, **kwargs})


def test_integer_images_other_than_uint8_are_rejected():
  with pytest.raises(ValueError, match="uint8 .* or floating point"):
    add_noise(np.zeros((4, 2, 2, 1), np.int32), seed=0)


def test_noise_dataset_changes_the_asked_splits_independently():
  rng = np.random.default_rng(0)
  ds = Dataset(x_train=_images(60), y_train=rng.integers(0, 3, 60).astype(np.int32),
               x_test=_images(30, seed=1), y_test=rng.integers(0, 3, 30).astype(np.int32),
               class_names=("a", "b", "c"), train_index=np.arange(60), name="toy")
  noisy, changed = noise_dataset(ds, "salt_and_pepper", 0.2, amount=0.5, seed=5)
  assert set(changed) == {"train"} and len(changed["train"]) == 12
  np.testing.assert_array_equal(_changed(noisy.x_train, ds.x_train), changed["train"])
  assert noisy.x_test is ds.x_test
  both, changed2 = noise_dataset(ds, "salt_and_pepper", 0.2, amount=0.5, seed=5,
                                 splits=("train", "test"))
  np.testing.assert_array_equal(both.x_train, noisy.x_train)  # adding "test" keeps the pool's noise
  assert len(changed2["test"]) == 6
  with pytest.raises(ValueError, match="accepted: train, test"):
    noise_dataset(ds, seed=0, splits=("pool",))
