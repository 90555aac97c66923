"""The Python API refuses what it cannot run, before compiling, with a ValueError naming the
parameter (the two silent cases of issue #16 among them), and the command line shows the same
messages in its flags' words."""
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import experiment, stopping, strategies
from jaxal.data import make_splits
from jaxal.data.splits import Splits
from jaxal.data.synthetic import gaussian_pool


@pytest.fixture(scope="module")
def problem():
  x, y = gaussian_pool(200, 4, 8, 0)
  xt, yt = gaussian_pool(60, 4, 8, 1)
  pool = jaxal.LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = jaxal.LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = jaxal.get_model("mlp", 4, hidden=(8,))
  train = jaxal.TrainConfig(epochs=1, batch_size=8)
  return pool, test, model, train, y


def _round(problem, strategy=None, **kw):
  _, _, model, train, _ = problem
  kw.setdefault("budget", jaxal.Budget(initial_size=8, query_size=5, rounds=2))
  return jaxal.make_round(model, jaxal.make_optimizer(train), strategy or strategies.margin(),
                          train=train, **kw)


def _splits(y, initial=8, val=12, seeds=(0,)):
  return [make_splits(y, 4, initial, val, s) for s in seeds]


# -- configurations ---------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: jaxal.Budget(20, 10, 5, capacity=30),
     r"budget.capacity=30 is smaller than .* budget.initial_size \+ budget.rounds \* "
     r"budget.query_size = 20 \+ 5 \* 10 = 70"),
    (lambda: jaxal.Budget(20, 0, 5), r"budget.query_size must be an integer >= 1, got 0"),
    (lambda: jaxal.Budget(-1, 10, 5), r"budget.initial_size must be an integer >= 0"),
    (lambda: jaxal.Budget(2, 1, 2.5), r"budget.rounds must be an integer"),
    (lambda: jaxal.TrainConfig(epochs=0), r"train.epochs must be an integer >= 1"),
    (lambda: jaxal.TrainConfig(optimizer="rmsprop"), r"train.optimizer: unknown value 'rmsprop'"),
    (lambda: jaxal.TrainConfig(learning_rate=float("nan")), r"train.learning_rate must be a "
     "finite number > 0"),
    (lambda: jaxal.TrainConfig(momentum=1.0), r"train.momentum must be in \[0, 1\)"),
    (lambda: jaxal.TrainConfig(val_every=3), r"train.val_every=3 needs "
     "train.model_selection=best_val"),
    (lambda: jaxal.Uncertainty("dropout"), r"uncertainty.method: unknown value 'dropout'"),
    (lambda: jaxal.Uncertainty("mc_dropout", mc_samples=0), r"uncertainty.mc_samples must be"),
    (lambda: jaxal.Uncertainty(test_mc_samples=5), r"uncertainty.test_mc_samples=5 .* needs "
     "uncertainty.method=mc_dropout"),
])
def test_configs_refuse_bad_values_naming_the_parameter(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize("make,match", [
    (lambda: strategies.hybrid(alpha=0.0), r"alpha must be in \(0, 1\], got 0.0"),
    (lambda: strategies.hybrid(n_clusters=0), r"n_clusters must be an integer >= 1"),
    (lambda: strategies.hybrid(score=strategies.random()), r"score='random' has no score"),
    (lambda: strategies.typiclust(max_clusters=0), r"max_clusters must be an integer >= 1"),
    (lambda: strategies.probcover(purity=0), r"purity must be in \(0, 1\]"),
    (lambda: strategies.batchbald(num_configs=0), r"num_configs must be an integer >= 1"),
    (lambda: strategies.power(beta=0), r"beta must be > 0"),
    (lambda: strategies.cluster_margin(factor=0.5), r"factor must be >= 1"),
    (lambda: strategies.cluster_annotation(purity=1.5), r"purity must be in \(0, 1\]"),
    (lambda: strategies.cluster_annotation(clusters_per_round=0), r"clusters_per_round must be"),
    (lambda: strategies.cluster_annotation(images="entropy"), r"images must be a Strategy"),
    (lambda: jaxal.Strategy("mine", lambda *a: None, needs=("logits",)),
     r"strategy.needs: unknown input\(s\) \['logits'\]"),
    (lambda: jaxal.Strategy("mine", lambda *a: None, needs=("scores",)),
     r"needs 'scores' but has no strategy.score"),
    (lambda: jaxal.Strategy("mine", "top_k"), r"strategy.select must be a function"),
])
def test_strategy_factories_refuse_bad_settings(make, match):
  with pytest.raises(ValueError, match=match):
    make()


# -- make_round -------------------------------------------------------------------------------

def test_make_round_refuses_wrong_components(problem):
  _, _, model, train, _ = problem
  tx = jaxal.make_optimizer(train)
  budget = jaxal.Budget(8, 5, 2)
  cases = [
      (lambda: jaxal.make_round(model, tx, "margin", budget=budget),
       r"strategy must be a strategy value such as jaxal.strategies.entropy\(\)"),
      (lambda: jaxal.make_round("mlp", tx, strategies.margin(), budget=budget),
       r"model must be a flax.linen Module"),
      (lambda: jaxal.make_round(model, "adam", strategies.margin(), budget=budget),
       r"tx must be an optax GradientTransformation"),
      (lambda: jaxal.make_round(model, tx, strategies.margin(), budget=(8, 5, 2)),
       r"budget must be a jaxal.Budget"),
      (lambda: jaxal.make_round(model, tx, strategies.margin(), budget=budget, num_classes=1),
       r"num_classes must be an integer >= 2"),
      (lambda: jaxal.make_round(model, tx, strategies.margin(), budget=budget, pool_subset=3),
       r"pool_subset=3 must be at least query_size=5"),
      (lambda: jaxal.make_round(model, tx, strategies.bald(), budget=budget),
       r"strategy 'bald' needs several predictive samples; set uncertainty.method=mc_dropout"),
      (lambda: jaxal.make_round(jaxal.get_model("mlp", 4, dropout_rate=0.0), tx, strategies.bald(),
                                budget=budget, uncertainty=jaxal.Uncertainty("mc_dropout")),
       r"uncertainty.method=mc_dropout needs a network with dropout"),
  ]
  for make, match in cases:
    with pytest.raises(ValueError, match=match):
      make()


# -- run: the budget against the pool, splits, arrays -----------------------------------------

def test_run_refuses_more_labels_than_the_pool_holds(problem):
  """Issue #16's second silent case: rounds * K beyond the selectable pool used to run, label
  fewer distinct items than recorded and reach the validation set."""
  pool, test, _, _, y = problem
  round_fn = _round(problem, budget=jaxal.Budget(8, 10, 200))
  with pytest.raises(ValueError, match=r"budget.initial_size \+ budget.rounds \* "
                     r"budget.query_size = 8 \+ 200 \* 10 = 2008 exceeds the selectable pool "
                     r"\(188 items"):
    jaxal.run(round_fn, pool, test, [0], _splits(y))


def test_run_refuses_a_split_that_does_not_match_the_budget(problem):
  pool, test, _, _, y = problem
  with pytest.raises(ValueError, match=r"splits\[0\].initial has 12 items, the budget "
                     r"budget.initial_size=8"):
    jaxal.run(_round(problem), pool, test, [0], _splits(y, initial=12))


def test_run_refuses_a_selectable_validation_set(problem):
  pool, test, _, _, y = problem
  sp = _splits(y)[0]
  leaky = Splits(initial=sp.initial, val=sp.val, selectable=np.ones_like(sp.selectable))
  with pytest.raises(ValueError, match=r"validation items are selectable"):
    jaxal.run(_round(problem), pool, test, [0], [leaky])


@pytest.mark.parametrize("change,match", [
    (lambda p, t, y: (jaxal.LabeledArrays(p.x.astype(jnp.int32), p.y), t, [0], _splits(y)),
     r"pool.x must be float images"),
    (lambda p, t, y: (jaxal.LabeledArrays(p.x, p.y.at[3].set(7)), t, [0], _splits(y)),
     r"pool.y holds labels 0..7; the round has num_classes=4"),
    (lambda p, t, y: (p, jaxal.LabeledArrays(t.x[:, :, :4], t.y), [0], _splits(y)),
     r"test.x has images \(1, 4, 1\), the pool \(1, 8, 1\)"),
    (lambda p, t, y: ((p.x, p.y), t, [0], _splits(y)), r"pool must be a jaxal.LabeledArrays"),
    (lambda p, t, y: (p, t, [0, 0], _splits(y, seeds=(0, 1))), r"seeds names a seed twice"),
    (lambda p, t, y: (p, t, [0, 1], _splits(y)), r"splits must hold one Splits per seed"),
    (lambda p, t, y: (p, t, [], []), r"seeds must be a non-empty list of ints"),
])
def test_run_refuses_wrong_arrays_and_seeds(problem, change, match):
  pool, test, _, _, y = problem
  args = change(pool, test, y)
  with pytest.raises(ValueError, match=match):
    jaxal.run(_round(problem), *args)


def test_run_refuses_subsets_and_cluster_counts_the_pool_cannot_give(problem):
  pool, test, _, _, y = problem
  with pytest.raises(ValueError, match=r"pool_subset=180 exceeds the unlabeled items left in "
                     r"the last round \(175\)"):
    jaxal.run(_round(problem, pool_subset=180), pool, test, [0], _splits(y))
  with pytest.raises(ValueError, match=r"stop_set=500 exceeds the selectable pool"):
    jaxal.run(_round(problem, stop_set=500), pool, test, [0], _splits(y))
  clusters = strategies.cluster_annotation(clusters_per_round=5, cluster_size=75)
  with pytest.raises(ValueError, match=r"clusters_per_round=5 exceeds the 3 clusters"):
    jaxal.run(_round(problem, clusters), pool, test, [0], _splits(y))


@pytest.mark.slow
def test_a_checked_run_still_runs(problem):
  pool, test, _, _, y = problem
  records = jaxal.run(_round(problem), pool, test, [0], _splits(y))
  assert [r["labels"] for r in records[0]["rounds"]] == [8, 13, 18]


# -- the command line shows the same messages in its flags' words -----------------------------

def test_argument_errors_render_with_flag_names():
  with pytest.raises(jaxal.ArgumentError) as info:
    jaxal.Budget(20, 10, 5, capacity=30)
  assert str(info.value).startswith("budget.capacity=30 is smaller")
  assert info.value.params[0] == "budget.capacity"
  cli = experiment.flag_error(jaxal.ArgumentError("{train.epochs} must be >= 1"))
  assert str(cli) == "--epochs must be >= 1"
  with pytest.raises(jaxal.ArgumentError) as info:
    strategies.typiclust(neighbors=0)
  assert experiment.flag_error(info.value).args[0].startswith("--typiclust_neighbors must be")


@pytest.mark.parametrize("make,flag_message", [
    (lambda: stopping.StopRules(agreement=1.5), "--stop_agreement=1.5 must be in [0, 1]"),
    (lambda: stopping.StopRules(max_labels=-1), "--stop_labels=-1 must be >= 0"),
    (lambda: jaxal.get_model("vgg", 10), "--model: unknown model 'vgg'"),
    (lambda: jaxal.TrainConfig(epochs=0), "--epochs must be an integer >= 1"),
    (lambda: jaxal.Uncertainty("dropout"), "--uncertainty: unknown value 'dropout'"),
    (lambda: jaxal.Budget(5, 0, 2), "--query_size must be an integer >= 1"),
    (lambda: strategies.probcover(purity=2.0), "--probcover_purity must be in (0, 1]"),
    (lambda: strategies.cluster_annotation(purity=2.0), "--purity must be in (0, 1]"),
    (lambda: strategies.hybrid(alpha=2.0), "--alpha must be in (0, 1]"),
    (lambda: jaxal.data.subsample(jaxal.load_dataset("digits"), 5000), "--train_limit=5000"),
])
def test_the_flag_table_maps_each_parameter_to_one_flag(make, flag_message):
  with pytest.raises(jaxal.ArgumentError) as info:
    make()
  assert experiment.flag_error(info.value).args[0].startswith(flag_message)
