"""Bad input stops a run before any training, with a message that names the problem: NaN/inf pixels,
labels outside [0, classes), an empty class in a requested subset, mismatched image shapes in a
folder, budgets larger than the pool, a validation set larger than a class allows, unknown names."""
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxal import presets as configs
from jaxal import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cfg(**overrides):
  c = configs.load("default").to_dict()
  c.update(strategies="random", seeds=1, rounds=2, epochs=1, initial_size=6, query_size=3,
           val_size=6)
  c.update(overrides)
  return c


def refuse(tmp_path, **overrides) -> str:
  """run_experiment's ConfigError message; checks that nothing was written to the workdir."""
  work = tmp_path / "w"
  with pytest.raises(experiment.ConfigError) as e:
    experiment.run_experiment(cfg(**overrides), str(work), log=lambda m: None)
  assert not work.exists() or not os.listdir(work)
  return str(e.value)


def npz(tmp_path, x_train=None, y_train=None, names=("a", "b", "c"), n=30):
  """An .npz dataset: n training and n test 4x4 grayscale images over `names`."""
  rng = np.random.default_rng(0)
  y = np.arange(n) % len(names)
  x = rng.integers(0, 256, (n, 4, 4)).astype(np.float32)
  path = tmp_path / "data.npz"
  np.savez(path, x_train=x if x_train is None else x_train,
           y_train=y if y_train is None else y_train, x_test=x, y_test=y,
           class_names=np.array(names, dtype=str))
  return str(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_pixels_are_named_with_their_index(tmp_path, bad):
  x = np.full((30, 4, 4), 7.0, np.float32)
  x[5, 1, 2] = bad
  msg = refuse(tmp_path, dataset="npz", data_dir=npz(tmp_path, x_train=x))
  assert "array 'x_train': images hold 1 NaN/inf value(s)" in msg and "(5, 1, 2, 0)" in msg, msg


@pytest.mark.parametrize("label,expected", [
    (3, "label 3 at position 4 is outside [0, 3)"),
    (-1, "label -1 at position 4 is not a valid class index"),
])
def test_labels_outside_the_classes_are_named(tmp_path, label, expected):
  y = np.arange(30) % 3
  y[4] = label
  msg = refuse(tmp_path, dataset="npz", data_dir=npz(tmp_path, y_train=y))
  assert "array 'y_train'" in msg and expected in msg, msg


def test_requested_class_without_training_items_is_named(tmp_path):
  y = np.where(np.arange(30) % 3 == 1, 0, np.arange(30) % 3)  # no 'b' in the training set
  msg = refuse(tmp_path, dataset="npz", data_dir=npz(tmp_path, y_train=y), classes="a,b")
  assert msg.startswith("--classes:") and "['b'] would have no training items" in msg, msg


def test_folder_image_of_another_shape_is_named(tmp_path):
  from PIL import Image
  root = tmp_path / "imgs"
  for c in ("cat", "dog"):
    (root / c).mkdir(parents=True)
    for i in range(6):
      size = (9, 9) if (c, i) == ("dog", 3) else (8, 8)
      Image.new("L", size, color=40 * i).save(root / c / f"{i}.png")
  msg = refuse(tmp_path, dataset="folder", data_dir=str(root))
  assert "dog/3.png" in msg and "has shape (9, 9, 1)" in msg, msg
  assert "the expected shape is (8, 8, 1)" in msg, msg


@pytest.mark.parametrize("overrides,expected", [
    ({"initial_size": 5000}, "--initial_size=5000 is larger than the pool (1297 items after "
                             "--val_size=50)"),
    ({"rounds": 200, "query_size": 10}, "--initial_size + --rounds * --query_size = 20 + 200 * 10 "
                                        "= 2020 exceeds the pool (1297 items"),
    ({"val_size": 1347}, "--val_size=1347 leaves no pool: the training set has 1347 items"),
])
def test_budgets_larger_than_the_pool_are_refused(tmp_path, overrides, expected):
  msg = refuse(tmp_path, **{"initial_size": 20, "val_size": 50, **overrides})
  assert expected in msg, msg


def test_validation_set_larger_than_a_class_allows_names_the_class(tmp_path):
  y = np.array([0] * 20 + [1] * 3 + [2] * 7)  # class 'b' has 3 training items
  msg = refuse(tmp_path, dataset="npz", data_dir=npz(tmp_path, y_train=y), val_size=12)
  assert msg.startswith("--val_size=12 needs 4 items of class 1 but only 3 are available"), msg
  assert "at most 9 keeps every class balanced" in msg, msg


@pytest.mark.parametrize("overrides,expected", [
    ({"dataset": "cifar"}, "--dataset: unknown dataset 'cifar'; accepted: digits, idx, folder"),
    ({"model": "vgg"}, "--model: unknown model 'vgg'; accepted: mlp"),
    ({"strategies": "random,kcenter"}, "--strategies: unknown strategy 'kcenter'; accepted: "),
    ({"optimizer": "rmsprop"}, "--optimizer: unknown optimizer 'rmsprop'; accepted: sgd, adam"),
    ({"uncertainty": "bayes"}, "--uncertainty: unknown method 'bayes'; accepted: deterministic"),
    ({"seed_batching": "pmap"}, "--seed_batching: unknown value 'pmap'; accepted: auto, vmap, map"),
    ({"classes": "0,zebra"}, "class(es) ['zebra'] are not in dataset 'digits'; accepted"),
    ({"checkpoint_every": -1}, "--checkpoint_every must be an integer >= 0"),
    ({"keep_checkpoints": 0}, "--keep_checkpoints must be an integer >= 1, got 0"),
    ({"test_mc_samples": -1}, "--test_mc_samples must be an integer >= 0, got -1"),
    ({"test_mc_samples": 5}, "--test_mc_samples=5 averages MC-dropout passes at test time and "
                             "needs --uncertainty=mc_dropout (got 'deterministic')"),
])
def test_unknown_names_and_bad_values_list_what_is_accepted(tmp_path, overrides, expected):
  msg = refuse(tmp_path, **overrides)
  assert expected in msg, msg


def test_cli_prints_one_error_line_for_bad_data(tmp_path):
  y = np.array([0] * 20 + [1] * 3 + [2] * 7)
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  p = subprocess.run([sys.executable, "-m", "experiments.run", "--dataset=npz",
                      f"--data_dir={npz(tmp_path, y_train=y)}", "--val_size=12", "--initial_size=6",
                      "--rounds=2", "--query_size=3",
                      f"--workdir={tmp_path / 'w'}"], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=300)
  assert p.returncode != 0
  lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1, p.stderr
  assert lines[0].startswith("error: --val_size=12 needs 4 items of class 1"), lines[0]
