"""Bayesian scores against numpy written from the formulas; MC dropout and ensemble sampling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import models, scoring, strategies, training
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool
from jaxal.driver import make_round_fns
from jaxal.state import TEST_MC, Budget, LabeledArrays, TrainConfig, Uncertainty, round_key


def np_entropy(p):
  with np.errstate(divide="ignore", invalid="ignore"):
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1)


def np_bald(s):
  return np_entropy(s.mean(0)) - np_entropy(s).mean(0)


def np_variation_ratios(s):
  S, N, C = s.shape
  out = np.empty(N)
  for n in range(N):
    votes = np.bincount(s[:, n].argmax(-1), minlength=C)
    out[n] = 1 - votes.max() / S
  return out


def np_mean_std(s):
  S, N, C = s.shape
  out = np.empty(N)
  for n in range(N):
    out[n] = np.mean([np.sqrt(np.mean(s[:, n, c] ** 2) - np.mean(s[:, n, c]) ** 2)
                      for c in range(C)])
  return out


def random_samples(seed, S=7, N=200, C=5):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(S, N, C)) * rng.uniform(0.2, 6, size=(1, N, 1))
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bayesian_scores_match_numpy_on_random_samples(seed):
  s = random_samples(seed)
  s64 = s.astype(np.float64)
  np.testing.assert_allclose(scoring.bald(s), np_bald(s64), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(scoring.variation_ratios(s), np_variation_ratios(s64), atol=1e-6)
  np.testing.assert_allclose(scoring.mean_std(s), np_mean_std(s64), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,ref", [("entropy", np_entropy),
                                      ("least_confidence", lambda p: 1 - p.max(-1))])
def test_point_scores_on_samples_use_the_mean_prediction(name, ref):
  s = random_samples(5)
  np.testing.assert_allclose(scoring.SAMPLE_SCORES[name](s), ref(s.astype(np.float64).mean(0)),
                             rtol=1e-5, atol=1e-6)


def test_bald_is_zero_when_samples_agree():
  row = np.array([0.6, 0.3, 0.1], np.float32)
  s = np.broadcast_to(row, (10, 4, 3)).copy()
  np.testing.assert_allclose(scoring.bald(s), 0.0, atol=1e-6)
  np.testing.assert_allclose(scoring.variation_ratios(s), 0.0)
  np.testing.assert_allclose(scoring.mean_std(s), 0.0, atol=1e-6)


def test_bald_is_maximal_for_confident_disagreeing_samples():
  # Hand-worked: half the samples say class 0 with certainty, half class 1: H[mean] = log 2, each
  # sample's entropy is 0, so BALD = log 2, the most 2 one-hot votes can give.
  s = np.zeros((4, 3, 2), np.float32)
  s[:2, :, 0] = 1
  s[2:, :, 1] = 1
  disagree = float(scoring.bald(s)[0])
  assert disagree == pytest.approx(np.log(2), rel=1e-6)
  assert float(scoring.variation_ratios(s)[0]) == pytest.approx(0.5)
  assert float(scoring.mean_std(s)[0]) == pytest.approx(0.5)
  # Uncertain but agreeing samples have high entropy and zero BALD.
  flat = np.full((4, 1, 2), 0.5, np.float32)
  assert float(scoring.bald(flat)[0]) == pytest.approx(0.0, abs=1e-7)
  assert float(scoring.SAMPLE_SCORES["entropy"](flat)[0]) == pytest.approx(np.log(2))
  # Random samples never exceed the one-hot disagreement bound log C.
  assert float(np.max(scoring.bald(random_samples(3, C=2)))) <= np.log(2) + 1e-6


def _model_and_vars(name="gal_cnn"):
  model = models.get_model(name, 10)
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 28, 28, 1))
  return model, model.init(jax.random.PRNGKey(1), x), x


@pytest.mark.slow
def test_mc_dropout_samples_differ_across_keys_and_repeat_for_the_same_key():
  model, v, x = _model_and_vars()
  a = scoring.predict_samples(model, v, x, jax.random.PRNGKey(0), "mc_dropout", 8)
  b = scoring.predict_samples(model, v, x, jax.random.PRNGKey(0), "mc_dropout", 8)
  c = scoring.predict_samples(model, v, x, jax.random.PRNGKey(1), "mc_dropout", 8)
  assert a.shape == (8, 16, 10)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert not np.allclose(a[0], a[1])  # the S samples differ from each other
  np.testing.assert_allclose(a.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["gal_cnn", "lenet5", "mlp", "cnn3"])
@pytest.mark.slow
def test_shared_trunk_gives_the_same_samples_as_full_passes(name):
  model, v, x = _model_and_vars(name)
  key = jax.random.PRNGKey(3)
  shared = scoring.predict_samples(model, v, x, key, "mc_dropout", 5, shared_trunk=True)
  full = scoring.predict_samples(model, v, x, key, "mc_dropout", 5, shared_trunk=False)
  np.testing.assert_allclose(shared, full, rtol=1e-5, atol=1e-6)


def test_mc_dropout_without_dropout_is_a_clear_error():
  model = models.get_model("mlp", 3, dropout_rate=0.0)
  x = jnp.ones((2, 4, 4, 1))
  v = model.init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="uncertainty.method=mc_dropout needs a network with dropout"):
    scoring.predict_samples(model, v, x, jax.random.PRNGKey(0), "mc_dropout")


def test_deterministic_method_is_one_sample_of_the_softmax():
  model, v, x = _model_and_vars("mlp")
  s = scoring.predict_samples(model, v, x, None, "deterministic")
  np.testing.assert_allclose(s[0], jax.nn.softmax(model.apply(v, x)[0]), rtol=1e-6)
  assert s.shape[0] == 1


def test_score_pool_in_chunks_equals_scoring_all_at_once_without_dropout():
  model, v, x = _model_and_vars("mlp")
  whole = scoring.bald(scoring.predict_samples(model, v, x, None, "deterministic"))
  chunked = scoring.score_pool(model, v, x, None, "deterministic", scoring.SAMPLE_SCORES["entropy"],
                               chunk=5)
  np.testing.assert_allclose(chunked, scoring.entropy(jax.nn.softmax(model.apply(v, x)[0])),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(whole, 0.0, atol=1e-6)


def blobs(n=240, seed=0):
  return gaussian_pool(n, 4, 8, seed)


@pytest.mark.slow
def test_ensemble_members_differ_and_are_trained_in_one_call():
  x, y = blobs()
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 4, hidden=(16, 8))
  tc = TrainConfig(epochs=5, batch_size=8)
  tx = training.make_optimizer(tc)
  # capacity 30 = 20 initial + 2 rounds of 5
  round_fn = jaxal.make_round(model, tx, strategies.bald(), budget=Budget(20, 5, 2), train=tc,
                              uncertainty=Uncertainty(method="ensemble", ensemble_size=3),
                              num_classes=4)
  assert round_fn.capacity(240) == 30
  split = make_splits(y, 4, 20, 8, 0)
  state = round_fn.init_state(0, split, y, pool.x)
  state, m = round_fn.train_and_evaluate(state, pool, pool)
  kernels = np.asarray(state.variables["params"]["classifier"]["kernel"])
  assert kernels.shape[0] == 3
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])
  probs = scoring.predict_samples(model, state.variables, pool.x, None, "ensemble")
  assert probs.shape == (3, 240, 4)
  assert float(jnp.max(scoring.bald(probs))) > 0
  idx = np.asarray(round_fn.ask(state, pool))
  want = np.array(scoring.bald(probs))
  want[np.asarray(state.labeled) | ~np.asarray(state.selectable)] = -np.inf
  np.testing.assert_array_equal(np.sort(idx), np.sort(np.argsort(-want)[:5]))


@pytest.mark.parametrize("uncertainty,strategy", [("mc_dropout", "bald"),
                                                  ("mc_dropout", "variation_ratios"),
                                                  ("ensemble", "mean_std")])
@pytest.mark.slow
def test_bayesian_rounds_compile_once_with_pool_subset(uncertainty, strategy):
  x, y = blobs()
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 4, hidden=(16, 8))
  tc = TrainConfig(epochs=2, batch_size=8)
  tx = training.make_optimizer(tc)
  round_fn = jaxal.make_round(model, tx, getattr(strategies, strategy)(), budget=Budget(8, 4, 3),
                              train=tc, num_classes=4, pool_subset=50,
                              uncertainty=Uncertainty(method=uncertainty, mc_samples=6,
                                                      ensemble_size=2))
  splits = [make_splits(y, 4, 8, 8, s) for s in (0, 1)]
  fns = make_round_fns(round_fn)
  recs = jaxal.run(round_fn, pool, pool, [0, 1], splits, fns=fns)
  assert fns[0]._cache_size() == 1
  for rec in recs:
    chosen = [i for r in rec["rounds"] for i in r["selected"]]
    assert len(chosen) == 12 == len(set(chosen))


@pytest.mark.slow
def test_test_accuracy_mc_is_the_accuracy_of_the_mean_of_full_mc_dropout_passes():
  """`test_accuracy_mc` against a reference written without `score_pool`: S full stochastic passes
  per chunk (no shared trunk), keys fold_in(fold_in(round key, chunk), s), softmax averaged in
  numpy, argmax compared with the labels. Also: it is recorded only when asked for, it differs
  from the deterministic accuracy on some seed, and the round still compiles once."""
  x, y = blobs(n=200, seed=3)
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = LabeledArrays(jnp.asarray(x[:90]), jnp.asarray(y[:90]))
  model = models.get_model("mlp", 4, hidden=(16, 8), dropout_rate=0.5)
  tc = TrainConfig(epochs=3, batch_size=8, eval_batch_size=32)   # 90 test items: 3 chunks
  tx = training.make_optimizer(tc)
  make = lambda test_mc: jaxal.make_round(
      model, tx, strategies.bald(), budget=Budget(8, 4, 2), train=tc, num_classes=4,
      uncertainty=Uncertainty(method="mc_dropout", mc_samples=3, test_mc_samples=test_mc))
  round_fn = make(7)
  full_pass = jax.jit(lambda v, xb, k: jax.nn.softmax(
      model.apply(v, xb, dropout=True, rngs={"dropout": k})[0], -1))   # one whole network pass
  differs = []
  for seed in (0, 1):
    state = round_fn.init_state(seed, make_splits(y, 4, 8, 8, seed), y, pool.x)
    trained, metrics = jax.jit(lambda st: round_fn.train_and_evaluate(st, pool, test))(state)
    key = round_key(state.key, state.round, TEST_MC)
    probs = []
    for i in range(3):
      xb = test.x[32 * i:32 * (i + 1)]
      ck = jax.random.fold_in(key, i)
      passes = [full_pass(trained.variables, xb, jax.random.fold_in(ck, s)) for s in range(7)]
      probs.append(np.mean(np.stack([np.asarray(p, np.float64) for p in passes]), axis=0))
    want = np.mean(np.concatenate(probs).argmax(-1) == y[:90])
    assert float(metrics["test_accuracy_mc"]) == pytest.approx(want, abs=1e-6)
    differs.append(abs(float(metrics["test_accuracy_mc"]) - float(metrics["test_accuracy"])) > 0)
  assert any(differs)
  _, m0 = make(0).train_and_evaluate(state, pool, test)
  assert "test_accuracy_mc" not in m0
  splits = [make_splits(y, 4, 8, 8, s) for s in (0, 1)]
  fns = make_round_fns(round_fn)
  recs = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns)
  assert fns[0]._cache_size() == 1
  assert all(0 <= r["test_accuracy_mc"] <= 1 for rec in recs for r in rec["rounds"])
