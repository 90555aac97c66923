"""Frozen embeddings in the loop (jaxal.features): a linear head on `--features` selects from the
embeddings, the low-budget preset runs end to end, `--train=finetune` starts from the encoder, and
bad combinations are one line naming the flag."""
import json
import os

import numpy as np
import pytest

from jaxal import experiment, features, models, presets, training
from jaxal.data import load_dataset, make_splits
from jaxal.pretrain import configs, pretrain

import jax
import jax.numpy as jnp


def _embeddings(ds):
  """Embeddings unlike the pixels: a noisy one-hot of the label (3 dims per class)."""
  rng = np.random.default_rng(0)
  y = np.concatenate([ds.y_train, ds.y_test])
  e = np.repeat(np.eye(ds.num_classes), 3, axis=1)[y] + 0.1 * rng.normal(size=(len(y), 30))
  return e.astype(np.float32)


@pytest.fixture(scope="module")
def lowbudget_run(tmp_path_factory):
  work = tmp_path_factory.mktemp("lowbudget")
  ds = load_dataset("digits")
  path = str(work / "embeddings.npy")
  np.save(path, _embeddings(ds))
  cfg = presets.load("lowbudget_fmnist")
  cfg.update(dataset="digits", features=path, seeds=2, rounds=2, strategies="random,coreset",
             epochs=20, graph_subset=0, initial_by="random")   # the balanced initial set
  results = experiment.run_experiment(cfg.to_dict(), str(work / "run"), log=lambda s: None)
  return ds, path, results


@pytest.mark.slow
def test_lowbudget_preset_runs_one_label_per_class_per_round(lowbudget_run):
  ds, _, results = lowbudget_run
  assert results["config"]["train"] == "linear" and results["config"]["model"] == "linear"
  runs = results["runs"]
  assert sorted({r["strategy"] for r in runs}) == ["coreset", "random"]
  for r in runs:
    assert [x["labels"] for x in r["rounds"]] == [10, 20, 30]
  # on label-revealing embeddings a linear head is nearly perfect with 30 labels
  assert np.mean([r["rounds"][-1]["test_accuracy"] for r in runs]) > 0.9


def _k_center(x, labeled, k):
  """Greedy k-center (numpy reference): the point farthest from the labeled and chosen ones."""
  d = np.min(((x[:, None] - x[labeled][None]) ** 2).sum(-1), axis=1)
  taken = np.zeros(len(x), bool)
  taken[labeled] = True
  out = []
  for _ in range(k):
    i = int(np.argmax(np.where(taken, -np.inf, d)))
    out.append(i)
    taken[i] = True
    d = np.minimum(d, ((x - x[i]) ** 2).sum(-1))
  return out


@pytest.mark.slow
def test_frozen_features_run_selects_from_the_embeddings(lowbudget_run):
  ds, path, results = lowbudget_run
  emb = np.load(path)[:len(ds.y_train)]
  x = (emb - emb.mean(0)) / emb.std(0)   # the loop standardises with training statistics
  for r in results["runs"]:
    if r["strategy"] != "coreset":
      continue
    split = make_splits(ds.y_train, ds.num_classes, 10, 0, r["seed"])
    want = _k_center(x, split.initial, 10)
    assert sorted(r["rounds"][0]["selected"]) == sorted(want)
    pixels = ds.x_train.reshape(len(ds.y_train), -1).astype(np.float64)
    assert sorted(_k_center(pixels, split.initial, 10)) != sorted(want)   # the check can fail


def test_linear_head_features_are_its_inputs():
  net = models.get_model("linear", 3)
  x = jnp.arange(12.0).reshape(2, 1, 1, 6)
  v = net.init(jax.random.PRNGKey(0), x)
  logits, feats = net.apply(v, x)
  assert logits.shape == (2, 3)
  np.testing.assert_array_equal(feats, x.reshape(2, 6))
  _, feats = models.get_model("mlp_head", 3).apply(
      models.get_model("mlp_head", 3).init(jax.random.PRNGKey(0), x), x)
  np.testing.assert_array_equal(feats, x.reshape(2, 6))


@pytest.mark.slow
def test_finetune_starts_from_the_encoder_and_linear_embeds_with_its_trunk(tmp_path):
  c = configs.default()
  c.update(steps=4, log_every=2, checkpoint_every=0, probe_steps=0, batch_size=16)
  pretrain(c.to_dict(), str(tmp_path), log=lambda s: None)
  enc = str(tmp_path / "encoder.npz")
  stored = np.load(enc)
  net = models.get_model("mlp", 10, **features.model_kwargs({"train": "finetune", "encoder": enc}))
  v = training.init_variables(net, jax.random.PRNGKey(5), jnp.zeros((1, 8, 8, 1)))
  np.testing.assert_array_equal(v["params"]["dense0"]["kernel"], stored["params/dense0/kernel"])
  # the pool embeddings written by pretraining equal the encoder's trunk applied in the loop
  ds = load_dataset("digits")
  np.testing.assert_allclose(features.embed(enc, ds.x_train),
                             np.load(tmp_path / "embeddings.npy")[:len(ds.y_train)], atol=1e-5)


@pytest.mark.parametrize("change,message", [
    ({"train": "frozen"}, "--train: unknown value 'frozen'; accepted: full, linear, finetune."),
    ({"train": "linear", "model": "linear"},
     "--train=linear trains a head on embeddings: give --features or --encoder."),
    ({"model": "linear"}, "--model=linear is a head on embeddings: set --train=linear with "
                          "--features or --encoder."),
    ({"train": "linear", "features": "/no/such.npy", "model": "linear"},
     "--features: no file '/no/such.npy' (a .npy of [N_train + N_test, D])."),
])
def test_bad_settings_are_one_line_naming_the_flag(change, message):
  cfg = presets.load("default").to_dict()
  cfg.update(change)
  with pytest.raises(experiment.ConfigError) as e:
    experiment.validate(cfg)
  assert str(e.value) == message
