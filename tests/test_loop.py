"""The AL loop: balanced initial sets, K per round, no repeats, one compilation across rounds."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import loop, models, training
from jaxal.data import DatasetError, balanced_indices, make_splits
from jaxal.state import RoundConfig, TrainConfig
from jaxal.data.synthetic import gaussian_pool


def blobs(n=300, seed=0):
  return gaussian_pool(n, 4, 8, seed)


@pytest.mark.parametrize("n,c", [(20, 10), (23, 10), (7, 3), (0, 4)])
def test_balanced_indices_are_balanced_distinct_and_respect_exclusions(n, c):
  rng = np.random.default_rng(n)
  labels = rng.integers(0, c, 500)
  exclude = rng.uniform(size=500) < 0.3
  idx = balanced_indices(labels, n, rng, c, exclude=exclude)
  assert len(idx) == n and len(set(idx.tolist())) == n
  assert not exclude[idx].any()
  counts = np.bincount(labels[idx], minlength=c)
  assert counts.max() - counts.min() <= (1 if n % c else 0)
  assert counts.sum() == n


def test_make_splits_val_and_initial_are_disjoint_and_balanced():
  labels = np.repeat(np.arange(5), 40)
  s = make_splits(labels, 5, initial_size=10, val_size=25, seed=3)
  assert not set(s.val.tolist()) & set(s.initial.tolist())
  assert np.bincount(labels[s.val], minlength=5).tolist() == [5] * 5
  assert np.bincount(labels[s.initial], minlength=5).tolist() == [2] * 5
  assert s.selectable.sum() == 200 - 25 and not s.selectable[s.val].any()
  again = make_splits(labels, 5, initial_size=10, val_size=25, seed=3)
  np.testing.assert_array_equal(s.initial, again.initial)


def test_balanced_indices_error_names_the_flag_when_a_class_is_short():
  labels = np.array([0] * 50 + [1] * 3)
  with pytest.raises(DatasetError, match="val_size=10 needs 5 items of class 1 but only 3"):
    balanced_indices(labels, 10, np.random.default_rng(0), 2, what="val_size")


def _setup(strategy, rounds=3, k=7, init=8, seeds=(0, 1)):
  x, y = blobs()
  xt, yt = blobs(100, seed=0)
  pool = loop.LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = loop.LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = models.get_model("mlp", 4, hidden=(16,))
  tc = TrainConfig(epochs=3, batch_size=8)
  cfg = RoundConfig(strategy=strategy, query_size=k, capacity=init + rounds * k, num_classes=4,
                    train=tc)
  splits = [make_splits(y, 4, init, 12, s) for s in seeds]
  return model, training.make_optimizer(tc), cfg, pool, test, splits, y


@pytest.mark.parametrize("strategy", ["random", "entropy", "margin"])
def test_round_fn_compiles_once_and_labels_grow_by_k_without_repeats(strategy):
  rounds, k, init = 4, 7, 8
  model, tx, cfg, pool, test, splits, y = _setup(strategy, rounds, k, init)
  fns = loop.make_round_fns(model, tx, cfg)
  recs = loop.run(model, tx, cfg, pool, test, [0, 1], splits, rounds, fns=fns)
  assert fns[0]._cache_size() == 1  # one compilation for all 4 rounds (labeled counts 8..29)
  assert fns[1]._cache_size() == 1
  for rec, sp in zip(recs, splits):
    assert [r["labels"] for r in rec["rounds"]] == [init + i * k for i in range(rounds + 1)]
    assert [r["interactions"] for r in rec["rounds"]] == [i * k for i in range(rounds + 1)]
    chosen = [i for r in rec["rounds"] for i in r["selected"]]
    assert len(chosen) == rounds * k == len(set(chosen))
    assert not set(chosen) & set(sp.initial.tolist())
    assert not set(chosen) & set(sp.val.tolist())
    assert rec["rounds"][-1]["selected"] == []


def test_top_k_strategy_selects_the_most_uncertain_unlabeled_items():
  model, tx, cfg, pool, test, splits, y = _setup("least_confidence", rounds=1)
  state = loop.init_state(0, splits[0], y, model, tx, pool.x)
  state, _ = loop.train_and_evaluate(state, pool, test, model=model, tx=tx, cfg=cfg)
  idx = np.asarray(loop.ask(state, pool, model=model, cfg=cfg))
  logits, _ = model.apply(state.variables, pool.x)
  lc = 1 - np.array(jax.nn.softmax(logits)).max(-1)
  lc[np.asarray(state.labeled) | ~np.asarray(state.selectable)] = -np.inf
  np.testing.assert_array_equal(np.sort(idx), np.sort(np.argsort(-lc)[:cfg.query_size]))


def test_tell_writes_labels_even_wrong_ones_and_counts_interactions():
  model, tx, cfg, pool, test, splits, y = _setup("random")
  state = loop.init_state(0, splits[0], y, model, tx, pool.x)
  unl = np.flatnonzero(~np.asarray(state.labeled) & np.asarray(state.selectable))[:3]
  wrong = (y[unl] + 1) % 4
  new = loop.tell(state, jnp.asarray(unl), jnp.asarray(wrong))
  assert np.asarray(new.labels)[unl].tolist() == wrong.tolist()
  assert int(new.num_labeled) == int(state.num_labeled) + 3
  assert int(new.interactions) == 3 and int(new.round) == 1
  assert int(loop.tell(state, jnp.asarray(unl), jnp.asarray(wrong), interactions=1).interactions) == 1


def test_same_seed_same_selections_different_seed_different():
  model, tx, cfg, pool, test, splits, y = _setup("entropy", rounds=2, seeds=(0, 0, 1))
  recs = loop.run(model, tx, cfg, pool, test, [0, 0, 1], splits, 2)
  sel = [[r["selected"] for r in rec["rounds"]] for rec in recs]
  assert sel[0] == sel[1]
  assert sel[0] != sel[2]


def test_vmapped_seeds_equal_seeds_run_one_at_a_time():
  model, tx, cfg, pool, test, splits, y = _setup("margin", rounds=2, seeds=(0, 1))
  together = loop.run(model, tx, cfg, pool, test, [0, 1], splits, 2)
  alone = loop.run(model, tx, cfg, pool, test, [1], splits[1:], 2)
  assert [r["selected"] for r in together[1]["rounds"]] == [r["selected"] for r in alone[0]["rounds"]]
  np.testing.assert_allclose([r["test_accuracy"] for r in together[1]["rounds"]],
                             [r["test_accuracy"] for r in alone[0]["rounds"]], atol=1e-6)


def test_selected_indices_are_reported_in_original_training_order():
  model, tx, cfg, pool, test, splits, y = _setup("random", rounds=1)
  train_index = np.arange(len(y)) * 10 + 5
  a = loop.run(model, tx, cfg, pool, test, [0], splits[:1], 1)
  b = loop.run(model, tx, cfg, pool, test, [0], splits[:1], 1, train_index=train_index)
  assert b[0]["rounds"][0]["selected"] == [i * 10 + 5 for i in a[0]["rounds"][0]["selected"]]


def test_vmap_and_map_over_seeds_give_the_same_run():
  model, tx, cfg, pool, test, splits, y = _setup("entropy", rounds=2, seeds=(0, 1))
  a = loop.run(model, tx, cfg, pool, test, [0, 1], splits, 2, seed_batching="vmap")
  b = loop.run(model, tx, cfg, pool, test, [0, 1], splits, 2, seed_batching="map")
  for ra, rb in zip(a, b):
    assert [r["selected"] for r in ra["rounds"]] == [r["selected"] for r in rb["rounds"]]
    np.testing.assert_allclose([r["test_accuracy"] for r in ra["rounds"]],
                               [r["test_accuracy"] for r in rb["rounds"]], atol=1e-6)
  with pytest.raises(ValueError, match="seed_batching: unknown value 'pmap'"):
    loop.run(model, tx, cfg, pool, test, [0], splits[:1], 1, seed_batching="pmap")


@pytest.mark.parametrize("strategy", ["entropy", "hybrid"])
def test_scanned_run_equals_the_round_by_round_run(strategy):
  rounds = 3
  model, tx, cfg, pool, test, splits, y = _setup(strategy, rounds=rounds, seeds=(0, 1))
  cfg = dataclasses.replace(cfg, n_clusters=3)
  a = loop.run(model, tx, cfg, pool, test, [0, 1], splits, rounds)
  fn = loop.make_scanned_fn(model, tx, cfg, rounds)
  b = loop.run_scanned(model, tx, cfg, pool, test, [0, 1], splits, rounds, fn=fn)
  assert fn._cache_size() == 1
  for ra, rb in zip(a, b):
    assert ra["seed"] == rb["seed"]
    assert len(rb["rounds"]) == rounds + 1
    for x, z in zip(ra["rounds"], rb["rounds"]):
      assert (x["round"], x["labels"], x["interactions"], x["selected"]) == \
             (z["round"], z["labels"], z["interactions"], z["selected"])
      np.testing.assert_allclose(x["test_accuracy"], z["test_accuracy"], atol=1e-6)
      np.testing.assert_allclose(x["train_loss"], z["train_loss"], rtol=1e-4)
