"""Pools without labels: the `unlabeled` source, the cold start, the held-out share, Label Studio
files, and the settings that refuse what cannot work."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxal.annotation import SKIP
from jaxal.data import DatasetError
from jaxal.data.sources import UNKNOWN, load_unlabeled
from jaxal.human import coldstart, labelstudio
from jaxal.human.answers import ClassNames, Item, LabelFileError
from jaxal.human.person import heldout_slots


def _folder(root, n=12, size=(8, 8), colour_at=None):
  os.makedirs(os.path.join(root, "a", "b"), exist_ok=True)
  rng = np.random.default_rng(0)
  images = {}
  for i in range(n):
    rel = ["", "a/", "a/b/"][i % 3] + f"im{i:02d}.png"
    arr = rng.integers(0, 256, size, dtype=np.uint8)
    if colour_at == i:
      arr = np.stack([arr] * 3, -1)
    Image.fromarray(arr).save(os.path.join(root, rel))
    images[rel] = arr
  return images


def test_folder_zip_npz_npy_read_every_image_without_labels(tmp_path):
  images = _folder(str(tmp_path / "f"))
  ds = load_unlabeled(str(tmp_path / "f"), classes=("x", "y"))
  assert ds.unlabeled and ds.x_train.shape == (12, 8, 8, 1) and ds.x_test.shape[0] == 0
  assert (ds.y_train == UNKNOWN).all() and ds.class_names == ("x", "y")
  assert sorted(ds.paths) == sorted(images)   # subfolders hold images, their names mean nothing
  for p, x in zip(ds.paths, ds.x_train):
    np.testing.assert_array_equal(x[..., 0], images[p])
  with zipfile.ZipFile(tmp_path / "f.zip", "w") as z:
    for rel in images:
      z.write(tmp_path / "f" / rel, "top/" + rel)
  dz = load_unlabeled(str(tmp_path / "f.zip"), classes=("x", "y"))
  assert dz.x_train.shape == ds.x_train.shape
  stack = np.stack(list(images.values()))
  np.save(tmp_path / "p.npy", stack)
  np.savez(tmp_path / "p.npz", images=stack)
  for name in ("p.npy", "p.npz"):
    da = load_unlabeled(str(tmp_path / name), classes=("x", "y"))
    np.testing.assert_array_equal(da.x_train[..., 0], stack)
    assert da.paths[3] == "#3"


def test_class_names_from_classes_txt_and_their_errors(tmp_path):
  _folder(str(tmp_path))
  with pytest.raises(DatasetError, match="classes"):
    load_unlabeled(str(tmp_path))
  (tmp_path / "classes.txt").write_text("# my classes\ncat\n\ndog\n")
  assert load_unlabeled(str(tmp_path)).class_names == ("cat", "dog")
  for bad, what in ((("cat",), "two classes"), (("cat", "cat"), "twice"),
                    (("cat", "skip"), "answer word")):
    with pytest.raises(DatasetError, match=what):
      load_unlabeled(str(tmp_path), classes=bad)


def test_sizes_and_modes_are_made_one(tmp_path):
  root = str(tmp_path)
  _folder(root, n=6, size=(10, 6), colour_at=2)
  Image.fromarray(np.zeros((20, 30), np.uint8)).save(os.path.join(root, "big.png"))
  ds = load_unlabeled(root, classes=("x", "y"))
  assert ds.x_train.shape == (7, 64, 64, 3) and "resized to 64x64" in ds.name
  ds = load_unlabeled(root, classes=("x", "y"), image_size=16)
  assert ds.x_train.shape == (7, 16, 16, 3)
  with pytest.raises(DatasetError, match="image_size"):
    load_unlabeled(root, classes=("x", "y"), image_size=-1)


def test_initial_labels_from_a_csv_or_class_folders(tmp_path):
  images = _folder(str(tmp_path / "f"))
  rel = sorted(images)
  (tmp_path / "seed.csv").write_text(f"path,label\n{rel[0]},y\nim04.png,0\n")
  ds = load_unlabeled(str(tmp_path / "f"), classes=("x", "y"),
                      initial_labels=str(tmp_path / "seed.csv"))
  known = {ds.paths[i]: int(c) for i, c in enumerate(ds.y_train) if c != UNKNOWN}
  assert known == {rel[0]: 1, "a/im04.png": 0}
  (tmp_path / "bad.csv").write_text("path,label\nnope.png,x\n")
  with pytest.raises(DatasetError, match="not in the pool"):
    load_unlabeled(str(tmp_path / "f"), classes=("x", "y"), initial_labels=str(tmp_path / "bad.csv"))
  (tmp_path / "bad.csv").write_text(f"{rel[1]},zebra\n")
  with pytest.raises(DatasetError, match="unknown class 'zebra'"):
    load_unlabeled(str(tmp_path / "f"), classes=("x", "y"), initial_labels=str(tmp_path / "bad.csv"))
  seeds = tmp_path / "seeds"
  for c in ("x", "y"):
    os.makedirs(seeds / c)
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(seeds / c / "s.png")
  ds = load_unlabeled(str(tmp_path / "f"), classes=("x", "y"), initial_labels=str(seeds))
  assert ds.x_train.shape[0] == 14 and list(ds.y_train[-2:]) == [0, 1]
  assert (ds.y_train[:12] == UNKNOWN).all()


def test_heldout_slots_hold_out_the_share_spread_over_the_round():
  for k, share in ((20, 0.2), (6, 0.2), (10, 0.5), (7, 0.3)):
    counts = [heldout_slots(r, k, share).sum() for r in range(50)]
    assert abs(np.mean(counts) - k * share) < 0.05 * k   # the share, over rounds
    assert max(counts) - min(counts) <= 1                 # and nearly exactly in each round
  assert not heldout_slots(3, 10, 0.0).any()


def test_cold_start_typiclust_picks_one_image_per_blob():
  rng = np.random.default_rng(0)
  centres = np.array([[20, 0], [0, 20], [-20, 0], [0, -20]], np.float32)   # apart in angle too
  x = np.concatenate([c + rng.normal(size=(50, 2)) for c in centres]).astype(np.float32)
  import jax
  for method in ("typiclust", "kmeans"):
    q = coldstart.cold_start_query(jax.random.PRNGKey(0), x, np.ones(200, bool), 4, method, 4, 8)
    picked = np.asarray(q.indices)
    assert sorted(picked // 50) == [0, 1, 2, 3], (method, picked)
    if method == "typiclust":
      # TypiClust's most typical member of its cluster (here its blob): the highest
      # 1 / (mean squared distance to its 20 nearest neighbours in the cluster + 1e-5), on
      # L2-normalised features.
      unit = x / np.linalg.norm(x, axis=1, keepdims=True)
      for i in picked:
        blob = unit[i // 50 * 50:(i // 50 + 1) * 50]
        d2 = ((blob[:, None] - blob[None]) ** 2).sum(-1)
        typicality = 1 / (np.sort(d2, axis=1)[:, 1:21].mean(1) + 1e-5)
        assert i % 50 == int(np.argmax(typicality)), (i, np.argmax(typicality))
  q = coldstart.cold_start_query(jax.random.PRNGKey(0), x, np.arange(200) < 10, 4, "random", 4, 8)
  assert len(set(np.asarray(q.indices))) == 4 and np.all(np.asarray(q.indices) < 10)


def test_pca_features_match_numpy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 4, 4, 2)).astype(np.float32)
  f = coldstart.pca_features(x, dimensions=5, fit_items=300)
  flat = x.reshape(300, -1)
  centred = flat - flat.mean(0)
  ref = centred @ np.linalg.svd(centred, full_matrices=False)[2][:5].T
  np.testing.assert_allclose(np.abs(f), np.abs(ref), rtol=1e-3, atol=1e-3)   # up to sign


# Label Studio files shaped as its documentation shows them: a JSON export (tasks with annotations,
# results of type "choices") and JSON_MIN (flat rows keyed by the control's name).
CLASSES = ClassNames(("cat", "dog"))


def _items(workdir):
  os.makedirs(os.path.join(workdir, "round_002", "images"), exist_ok=True)
  return [Item("image", k, os.path.join(workdir, "round_002", "images", f"{k}.png"), proposed=p,
               score=s) for k, p, s in ((11, 1, 0.9), (12, -1, 0.0), (13, 0, 0.6))]


def test_label_studio_tasks_carry_images_and_predictions(tmp_path):
  items = _items(str(tmp_path))
  path = labelstudio.write_tasks(str(tmp_path), 2, items, CLASSES)
  tasks = json.load(open(path))
  assert [t["data"]["jaxal_index"] for t in tasks] == [11, 12, 13]
  assert tasks[0]["data"]["image"] == "/data/local-files/?d=round_002/images/11.png"
  pred = tasks[0]["predictions"][0]
  assert pred["score"] == 0.9 and pred["result"][0] == {
      "from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["dog"]}}
  assert "predictions" not in tasks[1]   # no network yet: no proposal
  xml = open(os.path.join(tmp_path, "round_002", "labelstudio_config.xml")).read()
  assert '<Choices name="label" toName="image"' in xml and '<Choice value="dog"/>' in xml


def test_label_studio_exports_read_back_as_answers(tmp_path):
  items = _items(str(tmp_path))
  full = [
      {"id": 1, "data": {"image": "x", "jaxal_index": 11, "jaxal_round": 2},
       "annotations": [{"id": 7, "was_cancelled": False, "result": [
           {"from_name": "label", "to_name": "image", "type": "choices",
            "value": {"choices": ["cat"]}}]}]},
      {"id": 2, "data": {"image": "y", "jaxal_index": 12},
       "annotations": [{"id": 8, "was_cancelled": True, "result": []}]},
      {"id": 3, "data": {"image": "z", "jaxal_index": 13}, "annotations": []},
      {"id": 4, "data": {"image": "w", "jaxal_index": 99}, "annotations": [{"result": [
          {"type": "choices", "value": {"choices": ["dog"]}}]}]},
  ]
  (tmp_path / "full.json").write_text(json.dumps(full))
  assert labelstudio.read_export(str(tmp_path / "full.json"), items, CLASSES) == [0, SKIP, None]
  minimal = [{"id": 1, "image": "x", "jaxal_index": 11, "label": "dog", "annotator": 1},
             {"id": 3, "image": "z", "jaxal_index": 13, "label": {"choices": ["cat"]}}]
  (tmp_path / "min.json").write_text(json.dumps(minimal))
  assert labelstudio.read_export(str(tmp_path / "min.json"), items, CLASSES) == [1, None, 0]
  (tmp_path / "bad.json").write_text(json.dumps([{"jaxal_index": 11, "label": "zebra"}]))
  with pytest.raises(LabelFileError, match="unknown class 'zebra'"):
    labelstudio.read_export(str(tmp_path / "bad.json"), items, CLASSES)
  (tmp_path / "notjson.json").write_text("{")
  with pytest.raises(LabelFileError, match="not a Label Studio JSON export"):
    labelstudio.read_export(str(tmp_path / "notjson.json"), items, CLASSES)


@pytest.mark.parametrize("changes, message", [
    ({"oracle": "simulated"}, "has no labels to simulate an oracle"),
    ({"val_size": 20}, "--val_size=20: an unlabeled pool has no validation labels"),
    ({"holdout": 1.0}, "--holdout must be in"),
    ({"cold_start": "magic"}, "--cold_start: unknown value 'magic'"),
    ({"port": 70000}, "--port must be an integer in 0..65535"),
    ({"model_selection": "best_val", "val_size": 0}, "needs a validation set"),
])
def test_settings_refuse_what_an_unlabeled_pool_cannot_do(changes, message):
  from jaxal.presets import load
  from jaxal.settings import ConfigError, validate
  cfg = {**load("label").to_dict(), "data_dir": "somewhere", **changes}
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
    validate(cfg)


def test_initial_labels_only_with_an_unlabeled_pool():
  from jaxal.presets import load
  from jaxal.settings import ConfigError, validate
  with pytest.raises(ConfigError, match="--initial_labels applies to --dataset=unlabeled"):
    validate({**load("default").to_dict(), "initial_labels": "x.csv"})


@pytest.mark.slow
def test_label_command_with_files_and_a_label_studio_export(tmp_path):
  """`experiments.label --oracle=human` asks round 0 in files (exit 3); a Label Studio export of
  its tasks answers it (`--import_labelstudio`), and the run goes on to round 1."""
  import subprocess
  import sys
  from tests.web_support import CLASSES, make_folder
  folder, workdir = str(tmp_path / "pool"), str(tmp_path / "work")
  truth = make_folder(folder, n=30)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  base = [sys.executable, "-m", "experiments.label", f"--data_dir={folder}",
          f"--workdir={workdir}", "--oracle=human", "--model=mlp", "--rounds=2",
          "--query_size=5", "--epochs=3"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  first = subprocess.run(base, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
  assert first.returncode == 3, first.stdout + first.stderr
  tasks = json.load(open(os.path.join(workdir, "round_000", "labelstudio_tasks.json")))
  paths = load_unlabeled(folder).paths
  export = [{"id": n, "data": t["data"], "annotations": [{"result": [
      {"from_name": "label", "to_name": "image", "type": "choices",
       "value": {"choices": [CLASSES[truth[paths[t["data"]["jaxal_index"]]]]]}}]}]}
      for n, t in enumerate(tasks)]
  (tmp_path / "export.json").write_text(json.dumps(export))
  second = subprocess.run(base + [f"--import_labelstudio={tmp_path / 'export.json'}"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=600)
  assert second.returncode == 3, second.stdout + second.stderr
  assert "5 answers of round 0 read from" in second.stdout
  assert "round   1/2  asks 5 images" in second.stdout
  results = json.load(open(os.path.join(workdir, "results.json")))
  assert results["runs"][0]["rounds"][0]["selected"] == [t["data"]["jaxal_index"] for t in tasks]
