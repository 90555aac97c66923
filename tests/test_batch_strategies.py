"""BatchBALD and power sampling (`jaxal.selection.batchbald`, `jaxal.selection.power`) against
exhaustive enumeration and numpy references, and the new strategies in a round (`jaxal.run`)."""
import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import models, registry, scoring, settings, strategies, training
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool
from jaxal.driver import make_round_fns
from jaxal.selection.batchbald import (add_exact, add_sampled, batchbald_select, empty_table,
                                       exact_configurations, exact_joint_entropies, sample_table,
                                       sampled_joint_entropies)
from jaxal.selection.power import power_select
from jaxal.state import Budget, LabeledArrays, TrainConfig, Uncertainty


def random_samples(s, n, c, seed, temperature=1.5):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(s, n, c)) * temperature
  p = np.exp(logits - logits.max(-1, keepdims=True))
  return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def joint_entropy_np(samples, points):
  """H(y_points) by enumerating every label configuration, float64. samples: [S, N, C]."""
  p = samples.astype(np.float64)
  c = p.shape[-1]
  h = 0.0
  for config in itertools.product(range(c), repeat=len(points)):
    per_sample = np.prod([p[:, i, y] for i, y in zip(points, config)], axis=0)
    q = per_sample.mean()
    if q > 0:
      h -= q * np.log(q)
  return h


def mutual_information_np(samples, points):
  p = samples.astype(np.float64)
  cond = sum(-np.mean(np.sum(np.where(p[:, i] > 0, p[:, i] * np.log(p[:, i]), 0), -1))
             for i in points)
  return joint_entropy_np(samples, points) - cond


def exact_table(samples, points, c):
  table = empty_table(c ** len(points), samples.shape[0])
  for b, i in enumerate(points):
    table = add_exact(table, jnp.asarray(samples[:, i]), b)
  return table


@pytest.mark.parametrize("chosen", [(4,), (1, 5)])
def test_exact_joint_entropy_matches_enumeration_of_two_and_three_points(chosen):
  s, n, c = 5, 7, 3
  samples = random_samples(s, n, c, seed=len(chosen))
  table = exact_table(samples, chosen, c)
  got = np.asarray(exact_joint_entropies(table, jnp.asarray(samples.transpose(1, 0, 2)),
                                         chunk=3))
  want = [joint_entropy_np(samples, list(chosen) + [j]) for j in range(n)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_exact_table_rows_are_the_configuration_probabilities():
  s, n, c = 4, 3, 3
  samples = random_samples(s, n, c, seed=3)
  table = np.asarray(exact_table(samples, (0, 2), c))
  for m in range(c ** 2):
    y0, y1 = m % c, m // c
    np.testing.assert_allclose(table[m], samples[:, 0, y0] * samples[:, 2, y1], rtol=1e-6)
  np.testing.assert_allclose(table.sum(0), 1.0, rtol=1e-5)


def test_sampled_joint_entropy_is_close_to_exhaustive_enumeration():
  s, n, c = 5, 6, 3
  samples = random_samples(s, n, c, seed=7)
  probs = jnp.asarray(samples.transpose(1, 0, 2))
  key = jax.random.PRNGKey(0)
  # Configurations of points 0, 1 drawn from their exact table, then extended by point 2.
  p, log_scale, owner = sample_table(key, exact_table(samples, (0, 1), c), 20000)
  p, log_scale, owner = add_sampled(jax.random.PRNGKey(1), p, log_scale, owner,
                                    jnp.asarray(samples[:, 2]))
  got = np.asarray(sampled_joint_entropies(p, log_scale, probs))
  want = np.array([joint_entropy_np(samples, [0, 1, 2, j]) for j in range(n)])
  np.testing.assert_allclose(got, want, atol=0.03)
  # Too few configurations would not be this close: the estimator really uses the samples.
  assert np.max(np.abs(got - want)) < 0.03 < np.ptp(want)


def brute_force_batchbald(samples, candidates, k):
  chosen = []
  for _ in range(k):
    best, best_mi = None, -np.inf
    for j in np.flatnonzero(candidates):
      if j in chosen:
        continue
      mi = mutual_information_np(samples, chosen + [int(j)])
      if mi > best_mi:
        best, best_mi = int(j), mi
    chosen.append(best)
  return chosen


def test_batchbald_greedy_matches_brute_force_enumeration():
  s, n, c, k = 4, 10, 3, 4
  samples = random_samples(s, n, c, seed=11)
  candidates = np.ones(n, bool)
  candidates[[2, 7]] = False
  got = batchbald_select(jax.random.PRNGKey(0), samples, candidates, k, num_configs=1000)
  assert np.asarray(got).tolist() == brute_force_batchbald(samples, candidates, k)


def test_batchbald_first_pick_is_the_top_bald_candidate():
  samples = random_samples(8, 50, 5, seed=2)
  candidates = np.arange(50) % 3 != 0
  got = np.asarray(batchbald_select(jax.random.PRNGKey(0), samples, candidates, 3))
  b = np.where(candidates, np.asarray(scoring.bald(jnp.asarray(samples))), -np.inf)
  assert got[0] == np.argmax(b)
  assert len(set(got.tolist())) == 3 and candidates[got].all()


def test_batchbald_sampled_phase_picks_near_optimal_points():
  # C = 3, M = 30: exact while 3^b <= 30 (b <= 3), sampled beyond; K = 6 -> picks 5, 6 sampled.
  s, n, c, k = 6, 12, 3, 6
  samples = random_samples(s, n, c, seed=5)
  candidates = np.ones(n, bool)
  got = np.asarray(batchbald_select(jax.random.PRNGKey(3), samples, candidates, k,
                                    num_configs=30 * s))
  assert exact_configurations(c, 30 * s, k) == 4
  assert len(set(got.tolist())) == k
  exact = brute_force_batchbald(samples, candidates, 5)
  assert got[:5].tolist() == exact  # 3^4 = 81 <= 180: exact up to the 5th pick
  prefix = got[:5].tolist()
  options = {j: mutual_information_np(samples, prefix + [j]) for j in range(n) if j not in prefix}
  assert options[int(got[5])] >= max(options.values()) - 0.05


def test_batchbald_memory_is_linear_in_the_pool():
  n, s, c = 60000, 20, 10
  fn = jax.jit(lambda key, x, m: batchbald_select(key, x, m, 10, 1000))
  compiled = fn.lower(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((s, n, c), jnp.float32),
                      jax.ShapeDtypeStruct((n,), bool)).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes
  assert temp < 4 * s * n * c * 4  # a few copies of the samples; an N x N array is 14 GB


def test_power_sampling_is_the_gumbel_top_k_of_beta_log_scores():
  rng = np.random.default_rng(0)
  scores = rng.uniform(size=40).astype(np.float32)
  scores[[3, 9]] = 0.0
  candidates = np.ones(40, bool)
  candidates[[0, 1, 2]] = False
  key = jax.random.PRNGKey(5)
  got = np.asarray(power_select(key, scores, candidates, 8, beta=2.0))
  g = np.asarray(jax.random.gumbel(key, (40,), jnp.float32))
  perturbed = np.where(candidates, 2.0 * np.log(np.maximum(scores, np.finfo(np.float32).tiny)) + g,
                       -np.inf)
  np.testing.assert_array_equal(got, np.argsort(-perturbed, kind="stable")[:8])


def test_power_sampling_draws_proportionally_to_score_power():
  scores = np.array([0.1, 0.2, 0.3, 0.4, 0.0], np.float32)
  candidates = np.array([True, True, True, True, False])
  draws = jax.vmap(lambda k: power_select(k, scores, candidates, 1, beta=1.0))(
      jax.random.split(jax.random.PRNGKey(0), 20000))
  freq = np.bincount(np.asarray(draws)[:, 0], minlength=5) / 20000
  np.testing.assert_allclose(freq[:4], scores[:4] / scores[:4].sum(), atol=0.015)
  assert freq[4] == 0
  # Zero scores are drawn only after every positive one, never a non-candidate.
  all_but = np.asarray(power_select(jax.random.PRNGKey(1), scores, np.ones(5, bool), 5))
  assert all_but[-1] == 4


# ---------------------------------------------------------------------------------------------
# The new strategies inside a round: K new distinct labels per round, one compilation.

NEW = ["batchbald", "power_bald", "power_entropy", "coreset", "badge", "typiclust", "probcover",
       "cluster_margin", "kmeans", "margin_cluster_mean"]

# The flat settings (flags / preset keys) the registry reads strategies' settings from.
SETTINGS = {"batchbald_configs": 1000, "power_beta": 1.0, "typiclust_max_clusters": 500,
            "typiclust_neighbors": 20, "graph_subset": 5000, "probcover_delta": 0.0,
            "probcover_purity": 0.95, "cluster_margin_factor": 10.0,
            "cluster_margin_threshold": 0.0}


def loop_setup(strategy, rounds=2, k=5, init=8, pool_subset=0, **overrides):
  """(round_fn, pool, test, splits, y) for the registry's `strategy` with `overrides` of
  SETTINGS: an MLP on 240 Gaussian-blob items, MC dropout when the strategy needs samples."""
  x, y = gaussian_pool(240, 4, 8, 0)
  xt, yt = gaussian_pool(80, 4, 8, 1)
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = models.get_model("mlp", 4, hidden=(16,))
  tc = TrainConfig(epochs=2, batch_size=8, eval_batch_size=64)
  value = registry.strategy(strategy, {**SETTINGS, **overrides})
  method = "mc_dropout" if value.several_samples else "deterministic"
  round_fn = jaxal.make_round(model, training.make_optimizer(tc), value,
                              budget=Budget(init, k, rounds), train=tc, num_classes=4,
                              uncertainty=Uncertainty(method=method, mc_samples=4),
                              pool_subset=pool_subset)
  splits = [make_splits(y, 4, init, 12, 0)]
  return round_fn, pool, test, splits, y


def check_run(strategy, rounds=2, k=5, init=8, **extra):
  round_fn, pool, test, splits, _ = loop_setup(strategy, rounds, k, init, **extra)
  fns = make_round_fns(round_fn)
  (rec,) = jaxal.run(round_fn, pool, test, [0], splits, fns=fns)
  assert fns[0]._cache_size() == 1  # one compilation for both rounds
  assert [r["labels"] for r in rec["rounds"]] == [init + i * k for i in range(rounds + 1)]
  chosen = [i for r in rec["rounds"][:-1] for i in r["selected"]]
  assert all(len(set(r["selected"])) == k for r in rec["rounds"][:-1])
  assert len(chosen) == rounds * k == len(set(chosen))
  assert not set(chosen) & set(splits[0].initial.tolist())
  assert not set(chosen) & set(splits[0].val.tolist())


@pytest.mark.parametrize("strategy", NEW[:3])
@pytest.mark.slow
def test_batch_strategies_run_two_rounds_compiled_once(strategy):
  check_run(strategy)


def test_registry_names_and_what_they_need():
  for name in NEW:
    s = registry.strategy(name, SETTINGS)
    assert isinstance(s, strategies.Strategy) and s.name == name, name
  assert registry.strategy("batchbald", SETTINGS).several_samples
  assert registry.strategy("power_bald", SETTINGS).several_samples
  assert not registry.strategy("power_entropy", SETTINGS).several_samples
  assert not registry.strategy("coreset", SETTINGS).several_samples
  assert registry.strategy("batchbald", SETTINGS).needs == ("samples",)


@pytest.mark.slow
def test_ask_batchbald_uses_the_same_mc_samples_as_bald():
  round_fn, pool, test, splits, y = loop_setup("batchbald", k=1)
  state = round_fn.init_state(0, splits[0], y, pool.x)
  state, _ = jax.jit(round_fn.train_and_evaluate)(state, pool, test)
  got = jax.jit(round_fn.ask)(state, pool)
  bald_fn = dataclasses.replace(round_fn, strategy=strategies.bald())
  want = jax.jit(bald_fn.ask)(state, pool)
  np.testing.assert_array_equal(got, want)  # K = 1: BatchBALD is BALD on the same MC samples
  assert int(got[0]) in np.flatnonzero(np.asarray(state.selectable & ~state.labeled))


@pytest.mark.parametrize("name", ["batchbald", "power_bald"])
def test_validate_refuses_bald_like_strategies_without_predictive_samples(name):
  from jaxal import presets as configs  # pylint: disable=import-outside-toplevel
  cfg = configs.load("default").to_dict()
  cfg.update(strategies=f"random,{name}", uncertainty="deterministic")
  with pytest.raises(settings.ConfigError, match=f"--strategies={name} needs several predictive"):
    settings.validate(cfg)
  cfg.update(uncertainty="mc_dropout")
  settings.validate(cfg)
  cfg.update(strategies="power_entropy,coreset", uncertainty="deterministic")
  settings.validate(cfg)
