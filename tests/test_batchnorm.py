"""Batch norm in training (batch statistics, running averages, masked padding rows), evaluation
(running averages), MC dropout (dropout on, batch norm in inference mode) and the AL loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import models, scoring, strategies, training
from jaxal.data import make_splits
from jaxal.driver import make_round_fns
from jaxal.state import Budget, LabeledArrays, TrainConfig, Uncertainty

C = 3


def images(n=90, seed=0):
  """Three classes of 8x8x1 images: a class template plus noise."""
  rng = np.random.default_rng(seed)
  templates = rng.normal(size=(C, 8, 8, 1))
  y = rng.integers(0, C, n).astype(np.int32)
  return (templates[y] + 0.5 * rng.normal(size=(n, 8, 8, 1))).astype(np.float32), y


def small_cnn():
  return models.get_model("cnn2_bn", C, filters=(4, 8), dense=16)


def conv1_out(model, v, x):
  """The first convolution's output (the first batch norm's input) at `v`'s parameters."""
  _, st = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  return np.asarray(st["intermediates"]["conv1"]["__call__"][0], np.float64)


def test_cnn2_bn_has_the_four_metrics_architecture():
  model = models.get_model("cnn2_bn", 10)
  v = model.init(jax.random.PRNGKey(0), jnp.ones((1, 28, 28, 1)))
  shapes = jax.tree.map(lambda a: a.shape, v["params"])
  assert shapes["conv1"] == {"kernel": (3, 3, 1, 32)}  # no bias: batch norm shifts
  assert shapes["conv2"] == {"kernel": (3, 3, 32, 64)}
  assert shapes["bn1"] == {"scale": (32,), "bias": (32,)} and shapes["bn2"]["scale"] == (64,)
  assert shapes["fc"]["kernel"] == (7 * 7 * 64, 128) and shapes["classifier"]["kernel"] == (128, 10)
  assert jax.tree.map(lambda a: a.shape, v["batch_stats"]) == {
      "bn1": {"mean": (32,), "var": (32,)}, "bn2": {"mean": (64,), "var": (64,)}}
  assert model.dropout_rate == 0.5 and training.takes_row_mask(model)
  assert not training.takes_row_mask(models.get_model("mlp", 3))


@pytest.mark.slow
def test_train_step_updates_running_stats_from_the_unmasked_rows_only():
  x, y = images(8)
  x[5:] = 100.0  # padding rows: garbage that must not reach the statistics
  w = np.array([1] * 5 + [0] * 3, np.float32)
  model = small_cnn()
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  tx = training.make_optimizer(TrainConfig(learning_rate=1e-2))
  step = jax.jit(lambda xx: training.train_step(model, tx, v, tx.init(v["params"]), xx, y, w,
                                                 jax.random.PRNGKey(1)))
  new, _, _ = step(x)
  # Flax's BatchNorm with momentum 0.9: running = 0.9 * running + 0.1 * statistic of the batch,
  # the variance the biased one (ddof=0); the batch = the 5 rows with weight 1.
  h = conv1_out(model, v, x)[:5]
  want_mean = 0.9 * 0.0 + 0.1 * h.mean(axis=(0, 1, 2))
  want_var = 0.9 * 1.0 + 0.1 * h.var(axis=(0, 1, 2))
  np.testing.assert_allclose(new["batch_stats"]["bn1"]["mean"], want_mean, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(new["batch_stats"]["bn1"]["var"], want_var, rtol=1e-4, atol=1e-6)
  # other padding content: bit-identical parameters and statistics
  x2 = x.copy()
  x2[5:] = -7.0
  again, _, _ = step(x2)
  jax.tree.map(np.testing.assert_array_equal, new, again)


@pytest.mark.slow
def test_fit_changes_batch_stats_and_ignores_unlabeled_padding_rows():
  x, y = images(60)
  labeled = np.zeros(60, bool)
  labeled[1:12] = True  # 11 labeled, batch 4: a partial last batch; item 0 (the index buffer's
  x2 = x.copy()         # fill value, hence the padding rows) is unlabeled
  x2[~labeled] = 1e3
  model = small_cnn()
  cfg = TrainConfig(epochs=2, batch_size=4, optimizer="adam", learning_rate=1e-2)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  fit = jax.jit(lambda xx: training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(2),
                                        xx, y, labeled, cfg, capacity=20))
  a, b = fit(x), fit(x2)
  for layer in ("bn1", "bn2"):
    assert not np.allclose(a[0]["batch_stats"][layer]["mean"], 0.0)
    assert not np.allclose(a[0]["batch_stats"][layer]["var"], 1.0)
  jax.tree.map(np.testing.assert_array_equal, a[0], b[0])
  assert np.all(np.abs(np.asarray(a[0]["batch_stats"]["bn1"]["mean"])) < 10)


@pytest.mark.slow
def test_eval_mode_uses_the_running_averages():
  x, y = images(40)
  model = small_cnn()
  cfg = TrainConfig(epochs=2, batch_size=8, optimizer="adam", learning_rate=1e-2)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  v, _, _ = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                         np.ones(40, bool), cfg, capacity=40)
  _, st = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  h = np.asarray(st["intermediates"]["conv1"]["__call__"][0], np.float64)
  out = st["intermediates"]["bn1"]["__call__"][0]
  stats, p = v["batch_stats"]["bn1"], v["params"]["bn1"]
  want = (h - stats["mean"]) / np.sqrt(np.asarray(stats["var"], np.float64) + 1e-5) * p["scale"] \
      + p["bias"]
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
  batch = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5) * p["scale"] + p["bias"]
  assert not np.allclose(out, batch, atol=1e-3)  # ... not the batch's statistics
  # predict (and so evaluate) is that network: each row alone gives the same logits
  logits, _ = training.predict(model, v, x, chunk=16)
  np.testing.assert_allclose(logits[:1], model.apply(v, x[:1])[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits, model.apply(v, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", [("cnn2_bn", {"filters": (4, 8), "dense": 16}),
                                         ("resnet18", {"width": 2})])
@pytest.mark.slow
def test_mc_dropout_samples_use_running_stats_differ_across_keys_repeat_for_a_key(name, kwargs):
  x, _ = images(12)
  model = models.get_model(name, C, **kwargs)
  v = model.init(jax.random.PRNGKey(0), x)
  # running averages that are not the batch's statistics: the batch's mean, twice its variance
  _, upd = model.apply({**v, "batch_stats": jax.tree.map(jnp.zeros_like, v["batch_stats"])}, x,
                       train=True, dropout=False, mutable=["batch_stats"])
  stats = jax.tree_util.tree_map_with_path(
      lambda p, a: a * 10 * (2 if p[-1].key == "var" else 1), upd["batch_stats"])
  v = {**v, "batch_stats": stats}
  sample = jax.jit(lambda key, shared: scoring.predict_samples(model, v, x, key, "mc_dropout", 4,
                                                               shared_trunk=shared),
                   static_argnums=1)
  a = sample(jax.random.PRNGKey(1), True)
  assert a.shape == (4, 12, C) and not np.allclose(a, 1.0 / C)
  np.testing.assert_array_equal(a, sample(jax.random.PRNGKey(1), True))
  assert not np.allclose(a, sample(jax.random.PRNGKey(2), True))
  assert not np.allclose(a[0], a[1])
  np.testing.assert_allclose(a, sample(jax.random.PRNGKey(1), False), rtol=1e-5, atol=1e-6)
  # batch norm in inference mode: the trunk of a row does not depend on the rest of the batch,
  # and each sample is the network with dropout on and the running averages
  trunk = model.apply(v, x, method="trunk")
  np.testing.assert_allclose(trunk[:2], model.apply(v, x[:2], method="trunk"), rtol=1e-5,
                             atol=1e-5)
  k0 = jax.random.fold_in(jax.random.PRNGKey(1), 0)
  manual = model.apply(v, x, train=False, dropout=True, rngs={"dropout": k0})[0]
  np.testing.assert_allclose(a[0], jax.nn.softmax(manual), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_resnet18_fits_and_updates_its_running_stats():
  x, y = images(24)
  model = models.get_model("resnet18", C, width=2)
  cfg = TrainConfig(epochs=1, batch_size=8, optimizer="sgd", learning_rate=0.05)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  labeled = np.arange(24) < 21
  new, opt_state, loss = jax.jit(lambda v: training.fit(
      model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y, labeled, cfg, 24))(v)
  assert np.isfinite(loss)
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), v["batch_stats"], new["batch_stats"])
  assert all(jax.tree.leaves(changed))  # every batch-norm layer's statistics moved


def _loop_setup(uncertainty, strategy, members=0):
  x, y = images(90)
  xt, yt = images(30, seed=1)
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  tc = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-2)
  model = small_cnn()
  round_fn = jaxal.make_round(
      model, training.make_optimizer(tc), getattr(strategies, strategy)(),
      budget=Budget(initial_size=6, query_size=5, rounds=3), train=tc, num_classes=C,
      uncertainty=Uncertainty(method=uncertainty, mc_samples=3, ensemble_size=members or 5))
  return round_fn, pool, test, y


@pytest.mark.slow
def test_al_rounds_with_a_batch_norm_model_compile_once():
  round_fn, pool, test, y = _loop_setup("mc_dropout", "bald")
  splits = [make_splits(y, C, 6, 9, s) for s in (0, 1)]
  fns = make_round_fns(round_fn)
  recs = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns)
  assert fns[0]._cache_size() == 1 and fns[1]._cache_size() == 1
  for rec in recs:
    assert [r["labels"] for r in rec["rounds"]] == [6, 11, 16, 21]
    assert all(np.isfinite(r["train_loss"]) for r in rec["rounds"])


@pytest.mark.slow
def test_ensemble_members_train_their_own_batch_stats():
  round_fn, pool, _, y = _loop_setup("ensemble", "entropy", members=2)
  state = round_fn.init_state(0, make_splits(y, C, 6, 9, 0), y, pool.x)
  state, _, _ = jax.jit(lambda s: round_fn.train(s, pool))(state)
  mean = np.asarray(state.variables["batch_stats"]["bn1"]["mean"])
  assert mean.shape == (2, 4)
  assert not np.allclose(mean[0], mean[1]) and not np.allclose(mean, 0.0)
