import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.metrics import recall_score

from jaxal import metrics, models, training
from jaxal.round import evaluate
from jaxal.state import TrainConfig
from jaxal.data.synthetic import gaussian_pool


def blobs(n=400, seed=0):
  return gaussian_pool(n, 3, 6, seed, scale=4.0)


def test_cross_entropy_masks_padding_like_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(8, 4)).astype(np.float32)
  y = rng.integers(0, 4, 8)
  w = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want = -logp[np.arange(8), y][:5].mean()
  assert float(training.cross_entropy(logits, y, w)) == pytest.approx(want, rel=1e-5)


def test_labeled_first_order_is_a_permutation_of_the_labeled_items():
  labeled = np.zeros(50, bool)
  labeled[[3, 7, 8, 20, 21, 22, 40]] = True
  idx = jnp.nonzero(labeled, size=12, fill_value=0)[0]
  seen = set()
  for k in range(5):
    order = np.asarray(training.labeled_first_order(jax.random.PRNGKey(k), idx, 7, 4))
    assert order.shape == (16,)
    assert sorted(order[:7].tolist()) == [3, 7, 8, 20, 21, 22, 40]
    seen.add(tuple(order[:7]))
  assert len(seen) > 1  # the order changes with the key


@pytest.mark.parametrize("n_labeled,batch", [(7, 4), (8, 4), (1, 4), (33, 32)])
def test_fit_runs_ceil_n_over_batch_steps_per_epoch(n_labeled, batch):
  x, y = blobs(60)
  labeled = np.zeros(60, bool)
  labeled[:n_labeled] = True
  model = models.get_model("mlp", 3, hidden=(8,))
  cfg = TrainConfig(epochs=3, batch_size=batch, optimizer="adam")
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  _, opt_state, _ = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                                 labeled, cfg, capacity=40)
  assert int(opt_state[0].count) == 3 * -(-n_labeled // batch)


def test_fit_ignores_unlabeled_items_entirely():
  x, y = blobs(80)
  labeled = np.zeros(80, bool)
  labeled[::3] = True
  x2, y2 = x.copy(), y.copy()
  x2[~labeled] = 1e3  # garbage where unlabeled
  y2[~labeled] = -1
  model = models.get_model("mlp", 3, hidden=(16,))
  cfg = TrainConfig(epochs=4, batch_size=8)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  a = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(3), x, y, labeled, cfg, 40)
  b = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(3), x2, y2, labeled, cfg, 40)
  jax.tree.map(lambda p, q: np.testing.assert_array_equal(p, q), a[0], b[0])


@pytest.mark.slow
def test_fit_learns_separable_blobs():
  x, y = blobs(400)
  labeled = np.zeros(400, bool)
  labeled[:200] = True
  model = models.get_model("mlp", 3, hidden=(32,), dropout_rate=0.0)
  cfg = TrainConfig(epochs=20, batch_size=32, learning_rate=1e-2)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  v, _, loss = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                            labeled, cfg, 200)
  acc, _, _ = evaluate(model, v, x[200:], y[200:], num_classes=3, chunk=64)
  assert float(acc) > 0.95 and float(loss) < 0.3


def test_fit_refuses_more_labeled_than_capacity():
  x, y = blobs(20)
  model = models.get_model("mlp", 3)
  cfg = TrainConfig(epochs=1)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="capacity"):
    training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(0), x, y,
                 np.ones(20, bool), cfg, capacity=10)


def test_weight_decay_is_l2_added_to_the_gradient():
  cfg = TrainConfig(optimizer="sgd", learning_rate=0.1, momentum=0.0, weight_decay=0.5)
  tx = training.make_optimizer(cfg)
  params = {"w": jnp.array([2.0])}
  updates, _ = tx.update({"w": jnp.array([1.0])}, tx.init(params), params)
  # PyTorch SGD: w <- w - lr * (g + wd * w) = 2 - 0.1 * (1 + 1) = 1.8
  assert float(optax.apply_updates(params, updates)["w"][0]) == pytest.approx(1.8)


def test_unknown_optimizer_names_the_parameter_and_choices():
  with pytest.raises(ValueError, match="train.optimizer: unknown value 'rmsprop'; accepted: sgd, "
                     "adam"):
    training.make_optimizer(TrainConfig(optimizer="rmsprop"))


def test_per_class_accuracy_matches_sklearn_recall():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 5, 300)
  pred = np.where(rng.uniform(size=300) < 0.7, y, rng.integers(0, 5, 300))
  got = np.asarray(metrics.per_class_accuracy(pred, y, 6))
  np.testing.assert_allclose(got[:5], recall_score(y, pred, average=None), rtol=1e-6)
  assert np.isnan(got[5])  # class 5 never occurs
  assert float(metrics.accuracy(pred, y)) == pytest.approx(np.mean(pred == y))


def test_predict_in_chunks_equals_one_pass():
  x, _ = blobs(37)
  model = models.get_model("mlp", 3)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  logits, feats = training.predict(model, v, x, chunk=8)
  full_logits, full_feats = model.apply(v, x)
  np.testing.assert_allclose(logits, full_logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(feats, full_feats, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_l2_per_label_adds_c_over_n_times_the_kernel_norm():
  x, y = blobs(16)
  model = models.get_model("mlp", 3, hidden=(4,), dropout_rate=0.0)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  want = sum(float(np.sum(np.asarray(layer["kernel"]) ** 2)) for layer in v["params"].values())
  assert float(training.kernel_l2(v["params"])) == pytest.approx(want, rel=1e-5)
  # One SGD step (lr 1, no momentum) on the penalty alone: grad = 2 * (c / n) * W.
  cfg = TrainConfig(optimizer="sgd", learning_rate=1.0, momentum=0.0)
  tx = training.make_optimizer(cfg)
  w0 = np.zeros(16, np.float32)  # all items masked: the cross-entropy contributes nothing
  new, _, _ = training.train_step(model, tx, v, tx.init(v["params"]), x, y, w0,
                                  jax.random.PRNGKey(0), l2=0.25)
  k0 = np.asarray(v["params"]["classifier"]["kernel"])
  np.testing.assert_allclose(new["params"]["classifier"]["kernel"], k0 - 2 * 0.25 * k0, rtol=1e-5)
  np.testing.assert_allclose(new["params"]["classifier"]["bias"], v["params"]["classifier"]["bias"])
