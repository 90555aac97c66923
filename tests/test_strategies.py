import jax
import numpy as np
import pytest

from jaxal import registry, scoring
from jaxal import strategies as st
from jaxal.errors import ArgumentError
from jaxal.selection import primitives


def test_top_k_matches_numpy_argsort_on_candidates():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=300).astype(np.float32)
  candidates = rng.uniform(size=300) < 0.6
  got = np.asarray(primitives.top_k(scores, candidates, 25))
  masked = np.where(candidates, scores, -np.inf)
  want = np.argsort(-masked, kind="stable")[:25]
  np.testing.assert_array_equal(got, want)


def test_top_k_never_takes_a_non_candidate_even_with_higher_scores():
  scores = np.array([9.0, 8.0, 1.0, 0.5, 0.1], np.float32)
  candidates = np.array([False, False, True, True, True])
  assert sorted(np.asarray(primitives.top_k(scores, candidates, 3)).tolist()) == [2, 3, 4]


def test_random_select_is_distinct_uniform_and_key_dependent():
  candidates = np.zeros(100, bool)
  candidates[::2] = True
  counts = np.zeros(100)
  for i in range(400):
    idx = np.asarray(primitives.random_select(jax.random.PRNGKey(i), candidates, 10))
    assert len(set(idx.tolist())) == 10
    assert candidates[idx].all()
    counts[idx] += 1
  # 50 candidates, 4000 draws: 80 each in expectation; a loose chi-square style bound.
  assert counts[1::2].sum() == 0
  assert counts[::2].min() > 40 and counts[::2].max() < 130
  a = primitives.random_select(jax.random.PRNGKey(1), candidates, 10)
  b = primitives.random_select(jax.random.PRNGKey(1), candidates, 10)
  c = primitives.random_select(jax.random.PRNGKey(2), candidates, 10)
  np.testing.assert_array_equal(a, b)
  assert set(np.asarray(a).tolist()) != set(np.asarray(c).tolist())


# The flat settings of the command line / presets that the registry reads strategies' settings from.
SETTINGS = {"hybrid_score": "entropy", "alpha": 0.5, "n_clusters": 10, "purity": 0.8,
            "clusters_per_round": 10, "cluster_size": 75, "batchbald_configs": 1000,
            "power_beta": 1.0, "typiclust_max_clusters": 500, "typiclust_neighbors": 20,
            "graph_subset": 5000, "probcover_delta": 0.0, "probcover_purity": 0.95,
            "cluster_margin_factor": 10.0, "cluster_margin_threshold": 0.0}


def test_registry_holds_random_the_point_and_the_bayesian_scores():
  assert set(registry.STRATEGIES) == {"random", "least_confidence", "margin",
                                      "largest_margin", "entropy", "bald", "variation_ratios",
                                      "mean_std", "hybrid", "hybrid_balanced", "cluster",
                                      "batchbald", "power_bald", "power_entropy", "coreset",
                                      "badge", "typiclust", "probcover", "cluster_margin",
                                      "kmeans", "margin_cluster_mean"}
  # "entropy+cluster" and "cluster+entropy" (formerly table entries) are now any <score>+cluster
  # / cluster+<score> composition:
  for name in ("entropy+cluster", "cluster+entropy"):
    assert registry.strategy(name, SETTINGS).name == name
  # Every name makes a strategy value of that name.
  for name in registry.STRATEGIES:
    assert registry.strategy(name, SETTINGS).name == name
  composed = registry.strategy("margin+cluster", SETTINGS)
  assert isinstance(composed, st.ClusterAnnotation)
  assert composed.images.name == "margin" and composed.images_first
  clusters_first = registry.strategy("cluster+random", SETTINGS)
  assert isinstance(clusters_first, st.ClusterAnnotation)
  assert clusters_first.images.name == "random" and not clusters_first.images_first
  hybrid = registry.strategy("hybrid", {**SETTINGS, "hybrid_score": "margin"})
  assert hybrid.score is scoring.SAMPLE_SCORES["margin"]
  with pytest.raises(ArgumentError, match="strategies: unknown strategy 'kcenter'; accepted: "
                     "random") as e:
    registry.strategy("kcenter", SETTINGS)
  # The command line shows the same message with its flag.
  assert e.value.render({"strategies": "--strategies"}).startswith(
      "--strategies: unknown strategy 'kcenter'; accepted: random")
