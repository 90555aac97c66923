"""Hybrid uncertainty+cluster selection and cluster-based annotation against brute force."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import kmeans as km, models, strategies, training
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool
from jaxal.driver import make_round_fns
from jaxal.round import init_model
from jaxal.selection.cluster import cluster_expert
from jaxal.selection.hybrid import hybrid_select
from jaxal.state import INIT, Budget, LabeledArrays, TrainConfig, round_key


def pool(n=400, d=6, seed=0):
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(n, d)).astype(np.float32)
  scores = rng.uniform(size=n).astype(np.float32)
  cand = rng.uniform(size=n) < 0.8
  return feats, scores, cand


@pytest.mark.parametrize("k,alpha,n_clusters", [(20, 0.5, 3), (21, 0.3, 2), (10, 0.75, 4)])
@pytest.mark.slow
def test_hybrid_takes_top_alpha_k_then_nearest_to_their_centroids(k, alpha, n_clusters):
  feats, scores, cand = pool()
  key = jax.random.PRNGKey(1)
  idx = np.asarray(hybrid_select(key, scores, feats, cand, k, alpha, n_clusters))
  n_top = math.ceil(alpha * k)
  assert len(idx) == k == len(set(idx.tolist())) and cand[idx].all()
  masked = np.where(cand, scores, -np.inf)
  top = np.argsort(-masked, kind="stable")[:n_top]
  np.testing.assert_array_equal(idx[:n_top], top)
  # Brute force the rest with the same k-means (same key, same points -> same centroids).
  cents = np.asarray(km.kmeans(key, feats[top], n_clusters).centroids, np.float64)
  d = ((feats[:, None, :].astype(np.float64) - cents[None]) ** 2).sum(-1).min(1)
  rest = cand.copy()
  rest[top] = False
  want = np.argsort(np.where(rest, d, np.inf), kind="stable")[:k - n_top]
  assert set(idx[n_top:].tolist()) == set(want.tolist())


def test_hybrid_with_alpha_one_is_top_k():
  feats, scores, cand = pool()
  idx = hybrid_select(jax.random.PRNGKey(0), scores, feats, cand, 15, 1.0, 3)
  masked = np.where(cand, scores, -np.inf)
  np.testing.assert_array_equal(idx, np.argsort(-masked, kind="stable")[:15])


def test_balanced_hybrid_gives_each_centroid_an_equal_share():
  feats, scores, cand = pool(seed=3)
  key = jax.random.PRNGKey(2)
  k, alpha, nc = 16, 0.25, 4
  idx = np.asarray(hybrid_select(key, scores, feats, cand, k, alpha, nc, balanced=True))
  assert len(set(idx.tolist())) == k and cand[idx].all()
  top = idx[:4]
  cents = np.asarray(km.kmeans(key, feats[top], nc).centroids, np.float64)
  d2 = ((feats[:, None, :].astype(np.float64) - cents[None]) ** 2).sum(-1)
  free = cand.copy()
  free[top] = False
  want = []
  for t in range(k - 4):  # round-robin: centroid t % nc takes its nearest free candidate
    i = int(np.argmin(np.where(free, d2[:, t % nc], np.inf)))
    want.append(i)
    free[i] = False
  assert idx[4:].tolist() == want


def test_cluster_expert_accepts_exactly_at_the_threshold_and_declines_below():
  # cluster 0: 4 of 5 class 2 (0.8); cluster 1: 7 of 9 class 1 (0.777...); cluster 2: pure but not
  # shown; cluster 3: empty.
  y = np.array([2, 2, 2, 2, 0] + [1] * 7 + [0, 3] + [4, 4])
  a = np.array([0] * 5 + [1] * 9 + [2, 2])
  shown = np.array([True, True, False, True])
  acc, modal, share = cluster_expert(y, a, shown, 4, 5, 0.8)
  assert np.asarray(acc).tolist() == [True, False, False, False]
  assert np.asarray(modal)[:3].tolist() == [2, 1, 4]
  np.testing.assert_allclose(np.asarray(share)[:3], [0.8, 7 / 9, 1.0], rtol=1e-6)
  acc_low, _, _ = cluster_expert(y, a, shown, 4, 5, 0.77)
  assert np.asarray(acc_low).tolist() == [True, True, False, False]


def blobs(n=300, seed=0):
  return gaussian_pool(n, 3, 8, seed)


def cluster_strategy(name, **kw):
  """The cluster-annotation value of a command-line name: cluster, <score>+cluster (images first)
  or cluster+<score> (clusters first)."""
  images = None if name == "cluster" else strategies.entropy()
  return strategies.cluster_annotation(images=images, images_first=name != "cluster+entropy",
                                       **kw)


@pytest.mark.parametrize("name", ["cluster", "entropy+cluster", "cluster+entropy"])
@pytest.mark.slow
def test_cluster_rounds_count_interactions_and_propagate_modal_labels(name):
  x, y = blobs()
  p = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 3, hidden=(16, 8))
  tc = TrainConfig(epochs=3, batch_size=16, reinit=True, same_init=True)
  strategy = cluster_strategy(name, num_clusters=12, clusters_per_round=4, purity=0.8)
  round_fn = jaxal.make_round(model, training.make_optimizer(tc), strategy,
                              budget=Budget(9, 5, 1, capacity=300), train=tc, num_classes=3)
  split = make_splits(y, 3, 9, 6, 0)
  state = round_fn.init_state(0, split, y, p.x)
  before_labeled = np.asarray(state.labeled).copy()
  new, m = jax.jit(lambda s: round_fn(s, p, p))(state)
  images = 0 if name == "cluster" else 5
  assert int(m["clusters_shown"]) == 4
  assert int(new.interactions) == images + 4
  gained = np.asarray(new.labeled) & ~before_labeled
  assert gained.sum() == images + int(m["cluster_labeled"])
  sel = np.asarray(m["selected"])
  assert (sel >= 0).sum() == images
  # Propagated labels: the learner's label equals the cluster's modal true class, and the reported
  # accuracy of cluster labels matches the ground truth.
  lab = np.asarray(new.labels)
  cluster_items = gained.copy()
  cluster_items[sel[sel >= 0]] = False
  if cluster_items.any():
    assert float(m["cluster_label_accuracy"]) == pytest.approx(
        np.mean(lab[cluster_items] == y[cluster_items]), abs=1e-6)
  assert int(new.round) == 1


@pytest.mark.slow
def test_cluster_strategy_run_compiles_once_and_never_relabels():
  x, y = blobs()
  p = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 3, hidden=(16, 8))
  tc = TrainConfig(epochs=2, batch_size=16, same_init=True)
  strategy = cluster_strategy("entropy+cluster", num_clusters=10, clusters_per_round=2)
  round_fn = jaxal.make_round(model, training.make_optimizer(tc), strategy,
                              budget=Budget(9, 4, 3, capacity=300), train=tc, num_classes=3)
  splits = [make_splits(y, 3, 9, 6, s) for s in (0, 1)]
  fns = make_round_fns(round_fn)
  recs = jaxal.run(round_fn, p, p, [0, 1], splits, fns=fns)
  assert fns[0]._cache_size() == 1
  for rec in recs:
    labels = [r["labels"] for r in rec["rounds"]]
    assert all(b >= a + 4 for a, b in zip(labels, labels[1:]))  # K images + cluster labels
    assert [r["interactions"] for r in rec["rounds"]] == [0, 6, 12, 18]
    chosen = [i for r in rec["rounds"] for i in r["selected"]]
    assert len(chosen) == len(set(chosen)) == 12
    assert "cluster_labeled" in rec["rounds"][0]


def test_same_init_resets_to_the_initial_weights_every_round():
  x, y = blobs()
  p = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  model = models.get_model("mlp", 3, hidden=(8,))
  tx = training.make_optimizer(TrainConfig())
  round_fn = jaxal.make_round(model, tx, strategies.random(), budget=Budget(9, 5, 1),
                              num_classes=3)
  state = round_fn.init_state(0, make_splits(y, 3, 9, 6, 0), y, p.x)
  a = init_model(model, tx, round_key(state.key, 0, INIT), p.x[:1])[0]
  np.testing.assert_array_equal(a["params"]["classifier"]["kernel"],
                                state.variables["params"]["classifier"]["kernel"])
