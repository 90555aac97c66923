"""A user's own strategy, written in a few lines with no registry and no change to the library,
runs through `make_round` and `run`, and selects what a numpy reference computes from the same
trained network and the same MC-dropout samples: the top K of BALD divided by the predicted-class
frequency among the selectable items (the README's example)."""
import jax
import pytest
import jax.numpy as jnp
import numpy as np

import jaxal
from jaxal import acquisition
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool


def bald_over_class_frequency(num_classes):
  def select(key, inputs, k, selectable):
    del key
    predicted = jnp.argmax(inputs.probs, axis=-1)
    frequency = jnp.bincount(predicted, weights=selectable.astype(float), length=num_classes)
    return jaxal.strategies.top_k(inputs.scores / jnp.maximum(frequency[predicted], 1),
                                  selectable, k)
  return jaxal.Strategy("bald/frequency", select, needs=("scores", "probs"),
                        score=jaxal.scoring.bald, several_samples=True)


def _entropy(p):
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


@pytest.mark.slow
def test_custom_strategy_selects_what_a_numpy_reference_selects():
  x, y = gaussian_pool(240, 4, 8, 3)
  xt, yt = gaussian_pool(60, 4, 8, 4)
  pool = jaxal.LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = jaxal.LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = jaxal.get_model("mlp", 4, hidden=(16, 16))
  train = jaxal.TrainConfig(epochs=3, batch_size=8, eval_batch_size=64)
  unc = jaxal.Uncertainty("mc_dropout", mc_samples=6)
  k = 7
  round_fn = jaxal.make_round(model, jaxal.make_optimizer(train), bald_over_class_frequency(4),
                              budget=jaxal.Budget(initial_size=8, query_size=k, rounds=1),
                              train=train, uncertainty=unc)
  split = make_splits(y, 4, 8, 12, 0)
  records = jaxal.run(round_fn, pool, test, [0], [split])
  selected = records[0]["rounds"][0]["selected"]
  assert len(selected) == k and records[0]["rounds"][1]["labels"] == 8 + k

  # The reference: the same trained state (same keys), then numpy from the predictive samples.
  state = round_fn.init_state(0, split, y, pool.x)
  trained, _, _ = jax.jit(round_fn.train)(state, pool)
  samples = np.asarray(acquisition.pool_samples(trained, model, pool.x, unc, 64), np.float64)
  logits = np.asarray(model.apply(trained.variables, pool.x)[0], np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  bald = _entropy(samples.mean(0)) - _entropy(samples).mean(0)
  selectable = np.asarray(split.selectable) & ~np.asarray(trained.labeled)
  predicted = probs.argmax(-1)
  frequency = np.bincount(predicted[selectable], minlength=4)
  score = np.where(selectable, bald / np.maximum(frequency[predicted], 1), -np.inf)
  reference = np.lexsort((np.arange(len(score)), -score))[:k]
  assert sorted(selected) == sorted(reference.tolist())
  # Not the same as plain BALD here: the class frequencies change the choice.
  plain = np.lexsort((np.arange(len(score)), -np.where(selectable, bald, -np.inf)))[:k]
  assert sorted(plain.tolist()) != sorted(selected)
