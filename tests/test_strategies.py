import jax
import numpy as np
import pytest

from jaxal import strategies


def test_top_k_matches_numpy_argsort_on_candidates():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=300).astype(np.float32)
  candidates = rng.uniform(size=300) < 0.6
  got = np.asarray(strategies.top_k(scores, candidates, 25))
  masked = np.where(candidates, scores, -np.inf)
  want = np.argsort(-masked, kind="stable")[:25]
  np.testing.assert_array_equal(got, want)


def test_top_k_never_takes_a_non_candidate_even_with_higher_scores():
  scores = np.array([9.0, 8.0, 1.0, 0.5, 0.1], np.float32)
  candidates = np.array([False, False, True, True, True])
  assert sorted(np.asarray(strategies.top_k(scores, candidates, 3)).tolist()) == [2, 3, 4]


def test_random_select_is_distinct_uniform_and_key_dependent():
  candidates = np.zeros(100, bool)
  candidates[::2] = True
  counts = np.zeros(100)
  for i in range(400):
    idx = np.asarray(strategies.random_select(jax.random.PRNGKey(i), candidates, 10))
    assert len(set(idx.tolist())) == 10
    assert candidates[idx].all()
    counts[idx] += 1
  # 50 candidates, 4000 draws: 80 each in expectation; a loose chi-square style bound.
  assert counts[1::2].sum() == 0
  assert counts[::2].min() > 40 and counts[::2].max() < 130
  a = strategies.random_select(jax.random.PRNGKey(1), candidates, 10)
  b = strategies.random_select(jax.random.PRNGKey(1), candidates, 10)
  c = strategies.random_select(jax.random.PRNGKey(2), candidates, 10)
  np.testing.assert_array_equal(a, b)
  assert set(np.asarray(a).tolist()) != set(np.asarray(c).tolist())


def test_registry_holds_random_the_point_and_the_bayesian_scores():
  assert set(strategies.STRATEGIES) == {"random", "least_confidence", "margin",
                                        "largest_margin", "entropy", "bald", "variation_ratios",
                                        "mean_std", "hybrid", "hybrid_balanced", "cluster",
                                        "entropy+cluster", "cluster+entropy", "batchbald",
                                        "power_bald", "power_entropy", "coreset", "badge",
                                        "typiclust", "probcover", "cluster_margin", "kmeans",
                                        "margin_cluster_mean"}
  assert strategies.get_strategy("margin+cluster").kind == "cluster"
  assert strategies.get_strategy("cluster+random").clusters_first
  assert strategies.get_strategy("hybrid", "margin").score is not None
  with pytest.raises(ValueError, match="--strategies: unknown strategy 'kcenter'; accepted: random"):
    strategies.get_strategy("kcenter")
