"""`--initial_by=strategy` (jaxal.initial): each strategy chooses the first labels itself from no
labels, strategies that need a trained network start from random's choice, the default path is
unchanged, and bad settings are one line naming the flag."""
import numpy as np
import pytest

import jax.numpy as jnp

from jaxal import experiment, initial, models, presets, strategies, training
from jaxal.data import load_dataset, make_splits
from jaxal.round import make_round
from jaxal.state import Budget, LabeledArrays, TrainConfig

from test_features import _embeddings


def _k_center_from_nothing(x, k):
  """Greedy k-center with no labeled point (numpy reference): the first pick is item 0, then the
  item farthest from the ones chosen so far."""
  chosen = [0]
  d = ((x - x[0]) ** 2).sum(-1)
  for _ in range(k - 1):
    d[chosen] = -np.inf
    i = int(np.argmax(d))
    chosen.append(i)
    d = np.minimum(d, ((x - x[i]) ** 2).sum(-1))
  return sorted(chosen)


@pytest.fixture(scope="module")
def digits_pool():
  ds = load_dataset("digits")
  emb = _embeddings(ds)[:len(ds.y_train)]
  x = (emb - emb.mean(0)) / emb.std(0)
  pool = LabeledArrays(jnp.asarray(x[:, None, None, :], jnp.float32),
                       jnp.asarray(ds.y_train, jnp.int32))
  return ds, x, pool


def _round(strategy):
  model = models.get_model("linear", 10)
  return make_round(model, training.make_optimizer(TrainConfig()), strategy,
                    budget=Budget(initial_size=10, query_size=10, rounds=1))


def test_the_first_choice_is_the_strategys_own(digits_pool):
  ds, x, pool = digits_pool
  seeds = [0, 1]
  splits = [make_splits(ds.y_train, 10, 0, 0, s) for s in seeds]
  got = initial.strategy_splits(_round(strategies.coreset()), pool, seeds, splits, 10)
  want = _k_center_from_nothing(x.astype(np.float32), 10)
  for sp in got:
    assert sp.initial.tolist() == want   # k-center from nothing does not depend on the seed
    assert sp.initial.dtype == np.int64 and sp.selectable.all() and sp.val.size == 0
  rand = initial.strategy_splits(_round(strategies.random()), pool, seeds, splits, 10)
  margin = initial.strategy_splits(_round(strategies.margin()), pool, seeds, splits, 10)
  for r, m, s in zip(rand, margin, seeds):
    assert r.initial.tolist() == m.initial.tolist()   # network-based strategies start from random's
    assert len(set(r.initial.tolist())) == 10
    balanced = make_splits(ds.y_train, 10, 10, 0, s).initial
    assert sorted(r.initial.tolist()) != sorted(balanced.tolist())
  assert rand[0].initial.tolist() != rand[1].initial.tolist()
  assert initial.chooses_itself(strategies.typiclust())
  assert initial.chooses_itself(strategies.kmeans())
  assert not initial.chooses_itself(strategies.badge())


@pytest.mark.slow
def test_initial_by_strategy_end_to_end_and_the_default_is_unchanged(tmp_path):
  ds = load_dataset("digits")
  path = str(tmp_path / "embeddings.npy")
  np.save(path, _embeddings(ds))
  cfg = presets.load("lowbudget_fmnist").to_dict()
  cfg.update(dataset="digits", features=path, seeds=2, rounds=1, strategies="random,margin,coreset",
             epochs=10, graph_subset=0)
  quiet = lambda s: None
  by = experiment.run_experiment({**cfg, "initial_by": "strategy"}, str(tmp_path / "by"), log=quiet)
  acc = {(r["strategy"], r["seed"]): [x["test_accuracy"] for x in r["rounds"]] for r in by["runs"]}
  for r in by["runs"]:
    assert [x["labels"] for x in r["rounds"]] == [10, 20]
  for s in (0, 1):
    assert acc["margin", s][0] == acc["random", s][0]   # the same first labels, the same training
    assert acc["coreset", s][0] != acc["random", s][0]
  old = dict(cfg)
  old.pop("initial_by")
  a = experiment.run_experiment(old, str(tmp_path / "old"), log=quiet)
  b = experiment.run_experiment({**cfg, "initial_by": "random"}, str(tmp_path / "random"),
                                log=quiet)
  timeless = lambda runs: [{**r, "rounds": [{k: v for k, v in x.items() if k != "seconds"}
                                            for x in r["rounds"]]} for r in runs]
  assert timeless(a["runs"]) == timeless(b["runs"])
  # the random initial set is the balanced one of make_splits, not a strategy's choice
  assert [x["test_accuracy"] for x in b["runs"][0]["rounds"]] != acc["random", 0]


@pytest.mark.parametrize("change,message", [
    ({"initial_by": "model"}, "--initial_by: unknown value 'model'; accepted: random, strategy."),
    ({"initial_by": "strategy"}, "--initial_by=strategy chooses the first labels from the "
                                 "embeddings before anything is trained: it needs --train=linear "
                                 "(got 'full'), with --encoder or --features."),
    ({"initial_by": "strategy", "oracle": "human", "seeds": 1, "strategies": "margin"},
     "--initial_by=strategy applies to runs with --oracle=simulated (a person's run chooses its "
     "first images with --cold_start)."),
])
def test_bad_initial_by_is_one_line_naming_the_flag(change, message):
  cfg = presets.load("default").to_dict()
  cfg.update(dataset="digits", **change)
  with pytest.raises(experiment.ConfigError) as e:
    experiment.validate(cfg)
  assert str(e.value) == message
