"""Diversity baselines (`jaxal.selection`) against brute-force numpy references; the shared
primitives; ECE against a numpy loop; the baselines in a round."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from jaxal import acquisition, metrics, models, training
from jaxal import kmeans as km
from jaxal.selection.badge import badge_select, gradient_embedding, gradient_sq_distances
from jaxal.selection.cluster_margin import average_linkage, cluster_margin_select, round_robin
from jaxal.selection.coreset import coreset_select, min_squared_distances
from jaxal.selection.kmeans_select import kmeans_select
from jaxal.selection.margin_cluster_mean import margin_cluster_mean_select
from jaxal.selection.primitives import argmax_free, chunked_map, random_select
from jaxal.selection.probcover import probcover_delta, probcover_select
from jaxal.selection.typiclust import (  # pylint: disable=protected-access
    _kmeans_active, typicality, typiclust_select)
from jaxal.state import SELECT, SUBSET, round_key

from test_batch_strategies import check_run, loop_setup


def data(n=200, d=6, seed=0, labeled_share=0.1):
  rng = np.random.default_rng(seed)
  feats = rng.normal(size=(n, d)).astype(np.float32)
  u = rng.uniform(size=n)
  labeled = u < labeled_share
  candidates = (u >= labeled_share) & (u < 0.9)  # the rest: neither (e.g. validation)
  return feats, candidates, labeled


def sq_dists(a, b):
  a, b = a.astype(np.float64), b.astype(np.float64)
  return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------
# Shared primitives

@pytest.mark.parametrize("n,chunk", [(10, 3), (12, 4), (5, 8), (7, 1)])
def test_chunked_map_pads_maps_and_cuts_the_padding_off(n, chunk):
  x = jnp.arange(n * 2, dtype=jnp.float32).reshape(n, 2)
  m = jnp.arange(n) % 3 == 0
  seen = []

  def fn(xb, mb):
    seen.append(xb.shape)
    return xb * 2.0, jnp.where(mb, 1, 0)

  rows, flags = chunked_map(fn, (x, m), chunk)
  np.testing.assert_array_equal(rows, np.asarray(x) * 2)
  np.testing.assert_array_equal(flags, np.asarray(m).astype(int))
  assert seen == [(min(chunk, n), 2)]
  c = min(chunk, n)
  per = chunked_map(lambda xb: jnp.sum(xb, axis=0), (x,), chunk, per_chunk=True)
  padded = np.concatenate([np.asarray(x), np.zeros((-n % c, 2), np.float32)])
  np.testing.assert_array_equal(per, padded.reshape(-1, c, 2).sum(1))
  idx = chunked_map(lambda xb, i: jnp.full(xb.shape[:1], i), (x,), chunk, with_index=True)
  np.testing.assert_array_equal(idx, np.arange(n) // c)


def test_argmax_free_prefers_free_entries_then_the_first_not_taken():
  scores = jnp.array([0.5, 3.0, 2.0, 2.0])
  free = jnp.array([True, False, True, True])
  assert int(argmax_free(scores, free, ~free)) == 2  # ties: lowest index
  taken = jnp.array([True, True, False, True])
  assert int(argmax_free(scores, jnp.zeros(4, bool), taken)) == 2


# ---------------------------------------------------------------------------------------------
# Core-set

def naive_k_center(x, candidates, labeled, k):
  centres = list(np.flatnonzero(labeled))
  chosen = []
  for _ in range(k):
    best, best_d = None, -1.0
    for i in np.flatnonzero(candidates):
      if i in chosen:
        continue
      d = min((np.sum((x[i].astype(np.float64) - x[c]) ** 2) for c in centres), default=np.inf)
      if d > best_d:
        best, best_d = int(i), d
    chosen.append(best)
    centres.append(best)
  return chosen


@pytest.mark.parametrize("max_labeled", [None, 30])
def test_coreset_matches_a_naive_quadratic_k_center_loop(max_labeled):
  x, cand, lab = data(n=150, seed=1)
  assert lab.sum() <= 30
  got = coreset_select(x, cand, lab, 12, max_labeled=max_labeled, chunk=64)
  assert np.asarray(got).tolist() == naive_k_center(x, cand, lab, 12)


def test_coreset_without_labeled_points_starts_at_the_first_candidate():
  x, cand, _ = data(n=80, seed=2)
  got = np.asarray(coreset_select(x, cand, np.zeros(80, bool), 5))
  assert got[0] == np.flatnonzero(cand)[0]
  assert got.tolist() == naive_k_center(x, cand, np.zeros(80, bool), 5)


def test_min_squared_distances_scans_padded_centre_blocks():
  x, _, _ = data(n=90, seed=3)
  centres = x[:37]
  valid = np.arange(37) % 4 != 1
  got = min_squared_distances(x, centres, valid, chunk=32, centre_chunk=8)
  want = sq_dists(x, centres[valid]).min(1)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# BADGE

@pytest.mark.slow
def test_badge_embedding_is_the_autodiff_gradient_of_the_last_layer():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(12, 1, 8, 1)).astype(np.float32))
  model = models.get_model("mlp", 5, hidden=(16, 6))
  variables = training.init_variables(model, jax.random.PRNGKey(0), x[:1])
  logits, feats = model.apply(variables, x)
  probs = jax.nn.softmax(logits)
  pred = jnp.argmax(logits, -1)

  def loss(params, xi, yi):
    out, _ = model.apply({**variables, "params": params}, xi[None])
    return -jax.nn.log_softmax(out)[0, yi]

  grads = jax.vmap(lambda xi, yi: jax.grad(loss)(variables["params"], xi, yi))(x, pred)
  kernel = np.asarray(grads["classifier"]["kernel"]).reshape(12, -1)  # [N, D * C]
  emb = np.asarray(gradient_embedding(probs, feats))
  np.testing.assert_allclose(emb, kernel, rtol=1e-5, atol=1e-6)
  # The factorised distances equal the materialised ones, for every anchor.
  for i in (0, 5, 11):
    np.testing.assert_allclose(gradient_sq_distances(probs, feats, i),
                               sq_dists(emb, emb[i:i + 1])[:, 0], rtol=1e-4, atol=1e-5)


def badge_reference(key, probs, feats, candidates, k):
  emb = np.asarray(gradient_embedding(jnp.asarray(probs), jnp.asarray(feats)), np.float64)
  norm = np.where(candidates, (emb ** 2).sum(1), -np.inf)
  chosen = [int(np.argmax(norm))]
  d2 = sq_dists(emb, emb[chosen])[:, 0]
  for t in range(1, k):
    w = np.where(candidates, d2, 0.0)
    w[chosen] = 0.0
    cdf = np.cumsum(w)
    u = float(jax.random.uniform(jax.random.fold_in(key, t), (), jnp.float32))
    i = int(np.searchsorted(cdf, cdf[-1] * (1.0 - u), side="left"))
    chosen.append(i)
    d2 = np.minimum(d2, sq_dists(emb, emb[i:i + 1])[:, 0])
  return chosen


def test_badge_is_k_means_plus_plus_seeding_on_gradient_embeddings():
  rng = np.random.default_rng(4)
  n, c, d = 120, 4, 5
  logits = rng.normal(size=(n, c)) * 2
  probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
  feats = np.abs(rng.normal(size=(n, d))).astype(np.float32)
  cand = rng.uniform(size=n) < 0.8
  key = jax.random.PRNGKey(3)
  got = np.asarray(badge_select(key, probs, feats, cand, 10))
  assert got.tolist() == badge_reference(key, probs, feats, cand, 10)
  assert cand[got].all() and len(set(got.tolist())) == 10


def test_badge_memory_never_holds_the_gradient_embeddings():
  n, c, d = 60000, 10, 128
  fn = jax.jit(lambda key, p, f, m: badge_select(key, p, f, m, 100))
  compiled = fn.lower(jax.random.PRNGKey(0), jax.ShapeDtypeStruct((n, c), jnp.float32),
                      jax.ShapeDtypeStruct((n, d), jnp.float32),
                      jax.ShapeDtypeStruct((n,), bool)).compile()
  assert compiled.memory_analysis().temp_size_in_bytes < n * d * c * 4 / 10


# ---------------------------------------------------------------------------------------------
# k-means sampling and margin-cluster-mean

def fill_reference(first, fallback, candidates, k):
  out = []
  for i in first:
    if candidates[i] and i not in out:
      out.append(int(i))
  for i in np.argsort(-np.where(candidates, fallback, -np.inf), kind="stable"):
    if len(out) == k:
      break
    if i not in out:
      out.append(int(i))
  return out


@pytest.mark.slow
def test_kmeans_sampling_takes_the_candidate_nearest_each_centroid():
  x, cand, _ = data(n=160, seed=5)
  key = jax.random.PRNGKey(2)
  got = np.asarray(kmeans_select(key, x, cand, 8, chunk=50))
  cents = np.asarray(km.kmeans(key, x, 8, mask=cand, chunk=50).centroids)
  d = np.where(cand[:, None], sq_dists(x, cents), np.inf)
  first = d.argmin(0)
  want = fill_reference(first, -d.min(1), cand, 8)
  assert got.tolist() == want


@pytest.mark.slow
def test_margin_cluster_mean_clusters_the_points_inside_the_margin():
  x, cand, lab = data(n=200, seed=6)
  rng = np.random.default_rng(6)
  margins = rng.uniform(size=200).astype(np.float32)
  margins[lab] = rng.uniform(0.6, 1.0, size=lab.sum())
  key = jax.random.PRNGKey(4)
  got = np.asarray(margin_cluster_mean_select(key, margins, x, cand, lab, 6, chunk=64))
  inside = cand & (margins < margins[lab].min())
  assert inside.sum() >= 6
  cents = np.asarray(km.kmeans(key, x, 6, mask=inside, chunk=64).centroids)
  medoids = np.where(inside[:, None], sq_dists(x, cents), np.inf).argmin(0)
  medoids = sorted(set(medoids.tolist()), key=lambda i: (margins[i], i))
  assert got.tolist() == fill_reference(medoids, -margins, cand, 6)


def test_margin_cluster_mean_is_margin_sampling_when_few_points_are_inside():
  x, cand, lab = data(n=100, seed=7)
  margins = np.linspace(0.5, 1.0, 100).astype(np.float32)
  margins[lab] = 0.52  # nothing but the two smallest candidates lies inside
  got = np.asarray(margin_cluster_mean_select(jax.random.PRNGKey(0), margins, x, cand, lab, 5))
  want = np.argsort(np.where(cand, margins, np.inf), kind="stable")[:5]
  np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# Cluster-Margin

def partition(labels):
  groups = {}
  for i, l in enumerate(labels):
    if l >= 0:
      groups.setdefault(l, set()).add(i)
  return sorted(map(sorted, groups.values()))


@pytest.mark.parametrize("threshold,min_clusters", [(2.5, 1), (0.0, 7), (0.0, 1)])
def test_average_linkage_matches_scipy(threshold, min_clusters):
  x, _, _ = data(n=60, d=4, seed=8)
  valid = np.ones(60, bool)
  valid[[3, 17]] = False
  got = np.asarray(average_linkage(x, valid, threshold, min_clusters))
  assert (got[~valid] == -1).all()
  z = linkage(x[valid].astype(np.float64), method="average")
  if threshold > 0:
    ref = fcluster(z, t=threshold, criterion="distance")
  else:
    ref = fcluster(z, t=min_clusters, criterion="maxclust")
  want = np.full(60, -1)
  want[valid] = ref
  assert partition(got) == partition(want)
  # Labels are the smallest member of each cluster.
  for members in partition(got):
    assert got[members[0]] == members[0]


def round_robin_reference(u, labels, k):
  clusters = {}
  for i, l in enumerate(labels):
    if l >= 0:
      clusters.setdefault(int(l), []).append(i)
  order = sorted(clusters, key=lambda l: (len(clusters[l]), l))
  queues = [sorted(clusters[l], key=lambda i: u[i]) for l in order]
  out = []
  while len(out) < k:
    for q in queues:
      if q and len(out) < k:
        out.append(q.pop(0))
  return out


def test_round_robin_cycles_from_the_smallest_cluster_with_random_members():
  labels = np.array([0, 0, 0, 0, 4, 4, 6, -1, 0, 9, 9, 9, 4], np.int32)
  key = jax.random.PRNGKey(7)
  u = np.asarray(jax.random.uniform(key, (13,)))
  got = np.asarray(round_robin(key, labels, 10))
  assert got.tolist() == round_robin_reference(u, labels, 10)
  assert got[0] == 6  # the singleton cluster first


def test_cluster_margin_rounds_robin_over_hac_of_the_lowest_margins():
  x, cand, _ = data(n=150, seed=9)
  scores = np.random.default_rng(9).uniform(size=150).astype(np.float32)
  key = jax.random.PRNGKey(1)
  k, km_ = 6, 30
  for threshold in (0.0, 3.0):
    got = np.asarray(cluster_margin_select(key, scores, x, cand, k, km_, threshold))
    top = np.argsort(-np.where(cand, scores, -np.inf), kind="stable")[:km_]
    z = linkage(x[top].astype(np.float64), method="average")
    ref = (fcluster(z, t=threshold, criterion="distance") if threshold > 0
           else fcluster(z, t=k, criterion="maxclust"))
    # scipy numbers clusters arbitrarily: relabel by smallest member, as average_linkage does.
    first = {c: min(np.flatnonzero(ref == c)) for c in set(ref.tolist())}
    labels = np.array([first[c] for c in ref])
    u = np.asarray(jax.random.uniform(key, (km_,)))
    assert got.tolist() == top[round_robin_reference(u, labels, k)].tolist()
    assert len(set(got.tolist())) == k and cand[got].all()


# ---------------------------------------------------------------------------------------------
# TypiClust

def test_typicality_is_the_inverse_mean_squared_distance_to_cluster_neighbours():
  x, cand, _ = data(n=90, seed=10)
  assign = np.random.default_rng(10).integers(0, 4, 90).astype(np.int32)
  counts = np.bincount(assign[cand], minlength=4)
  kk = np.minimum(3, counts // 2)[assign]
  got = np.asarray(typicality(jnp.asarray(x), assign, cand, kk, 3, chunk=16))
  d = sq_dists(x, x)
  for i in range(90):
    others = [j for j in range(90) if j != i and cand[j] and assign[j] == assign[i]]
    near = np.sort(d[i, others])[:kk[i]]
    want = 1.0 / ((near.mean() if kk[i] else 0.0) + 1e-5)
    np.testing.assert_allclose(got[i], want, rtol=1e-4)


def typiclust_reference(x, assign, cand, lab, k, n_neighbors=20, min_size=5):
  """The authors' selection loop, given the clustering."""
  ids = sorted(set(assign[cand | lab].tolist()))
  rows = []
  for c in ids:
    size = int(((assign == c) & (cand | lab)).sum())
    rows.append((int(((assign == c) & lab).sum()), -size, c, size))
  kept = [r for r in rows if r[3] > min_size] or rows
  order = [r[2] for r in sorted(kept)]
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  d = sq_dists(x, x)
  typ = np.zeros(len(x))
  for c in ids:
    members = np.flatnonzero((assign == c) & cand)
    nn = min(n_neighbors, len(members) // 2)
    for i in members:
      near = np.sort(d[i, [j for j in members if j != i]])[:nn]
      typ[i] = 1.0 / ((near.mean() if nn else 0.0) + 1e-5)
  chosen = []
  for t in range(k):
    c = order[t % len(order)]
    members = [i for i in np.flatnonzero((assign == c) & cand) if i not in chosen]
    chosen.append(int(max(members, key=lambda i: (typ[i], -i))))
  return chosen


@pytest.mark.slow
def test_typiclust_picks_the_most_typical_point_of_the_least_covered_largest_cluster():
  x, cand, lab = data(n=240, d=5, seed=11, labeled_share=0.05)
  key = jax.random.PRNGKey(6)
  k, k_max = 8, 40
  got = np.asarray(typiclust_select(key, x, cand, lab, k, max_clusters=k_max, n_neighbors=6))
  # The same clustering (public pieces, same key), then the authors' loop in numpy.
  xn = jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))
  n_active = int(lab.sum()) + k
  _, assign = _kmeans_active(key, xn, jnp.asarray(cand | lab), k_max, n_active, 100, 1024)
  assign = np.asarray(assign)
  assert set(assign[cand | lab].tolist()) <= set(range(n_active))
  assert got.tolist() == typiclust_reference(x, assign, cand, lab, k, n_neighbors=6)


@pytest.mark.slow
def test_kmeans_with_a_traced_cluster_count_is_kmeans_on_the_seed_prefix():
  x, cand, _ = data(n=150, d=3, seed=12)
  key = jax.random.PRNGKey(0)
  seeds = km.kmeans_plus_plus(key, x, 12, mask=cand, n_local_trials=2 + int(np.log(12)))
  cents, assign = jax.jit(_kmeans_active, static_argnums=(3, 5, 6))(
      key, jnp.asarray(x), jnp.asarray(cand), 12, jnp.asarray(5), 100, 64)
  ref = km.kmeans(key, x, 5, mask=cand, init=seeds[:5], tol=0.0)
  np.testing.assert_array_equal(assign, ref.assignment)
  np.testing.assert_allclose(cents[:5], ref.centroids, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# ProbCover

def purity_np(x, valid, assign, delta):
  d = np.sqrt(sq_dists(x, x))
  pure = [(assign[(d[i] < delta) & valid] == assign[i]).all() for i in np.flatnonzero(valid)]
  return np.mean(pure)


def test_probcover_delta_is_the_largest_radius_with_enough_pure_balls():
  x, cand, lab = data(n=150, d=3, seed=13)
  valid = cand | lab
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  key = jax.random.PRNGKey(8)
  delta = float(probcover_delta(key, jnp.asarray(xn), valid, 4, purity=0.9))
  assign = np.asarray(km.kmeans(key, xn, 4, mask=valid).assignment)
  assert purity_np(xn, valid, assign, delta) >= 0.9
  assert purity_np(xn, valid, assign, delta * 1.001) < 0.9


def probcover_reference(x, cand, lab, k, delta, priority):
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  points = cand | lab
  adj = (np.sqrt(sq_dists(x, x)) < delta) & points[:, None] & points[None, :]
  covered = points & (lab | (adj & lab[None]).any(1))
  chosen = []
  for _ in range(k):
    gain = np.where(cand, (adj & ~covered[None]).sum(1), -1)
    gain[chosen] = -1
    if gain.max() > 0:
      i = int(np.argmax(gain))
    else:
      i = int(np.argmax(np.where(cand & ~np.isin(np.arange(len(x)), chosen), priority, -np.inf)))
    chosen.append(i)
    covered |= adj[i]
  return chosen


@pytest.mark.parametrize("delta", [0.35, 5.0])
def test_probcover_greedy_coverage_matches_numpy(delta):
  x, cand, lab = data(n=120, d=3, seed=14)
  key = jax.random.PRNGKey(9)
  got = np.asarray(probcover_select(key, x, cand, lab, 7, delta=delta))
  priority = np.asarray(jax.random.uniform(jax.random.split(key)[1], (120,)))
  assert got.tolist() == probcover_reference(x, cand, lab, 7, delta, priority)


# ---------------------------------------------------------------------------------------------
# Expected calibration error

@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_matches_a_numpy_loop_over_bins(bins):
  rng = np.random.default_rng(bins)
  logits = rng.normal(size=(500, 6)) * 2
  probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
  y = rng.integers(0, 6, 500)
  conf, pred = probs.max(1).astype(np.float64), probs.argmax(1)
  want = 0.0
  for b in range(bins):
    inside = (conf > b / bins) & (conf <= (b + 1) / bins)
    if inside.any():
      want += inside.mean() * abs((pred[inside] == y[inside]).mean() - conf[inside].mean())
  np.testing.assert_allclose(metrics.expected_calibration_error(probs, y, bins), want, atol=1e-6)
  assert metrics.ece is metrics.expected_calibration_error


def test_ece_is_zero_when_confidence_equals_accuracy():
  probs = np.array([[1.0, 0.0]] * 4 + [[0.5, 0.5]] * 4, np.float32)
  y = np.array([0] * 4 + [0, 1, 0, 1])
  assert float(metrics.ece(probs, y)) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# In a round

@pytest.mark.parametrize("strategy", ["coreset", "badge", "typiclust", "probcover",
                                      "cluster_margin", "kmeans", "margin_cluster_mean"])
@pytest.mark.slow
def test_diversity_strategies_run_two_rounds_compiled_once(strategy):
  check_run(strategy)


@pytest.mark.parametrize("strategy", ["coreset", "typiclust", "probcover"])
@pytest.mark.slow
def test_subset_working_set_keeps_the_labeled_items(strategy):
  """With a pool subset, the selection sees the random candidates plus every labeled item."""
  round_fn, pool, test, splits, y = loop_setup(strategy, pool_subset=60, graph_subset=50)
  state = round_fn.init_state(0, splits[0], y, pool.x)
  state, _ = jax.jit(round_fn.train_and_evaluate)(state, pool, test)
  got = np.asarray(jax.jit(round_fn.ask)(state, pool))
  size = 60 if strategy == "coreset" else 50
  k, capacity = round_fn.budget.query_size, round_fn.capacity(pool.x.shape[0])
  cand = np.asarray(state.selectable & ~state.labeled)
  sub = np.asarray(random_select(round_key(state.key, state.round, SUBSET), cand, size))
  lab = np.flatnonzero(np.asarray(state.labeled))
  assert 0 < len(lab) < capacity  # a buffer of `capacity` slots, padded
  pad = capacity - len(lab)
  idx = np.concatenate([sub, lab, np.zeros(pad, int)])
  feats = np.asarray(acquisition.pool_features(round_fn.model, state.variables, pool.x,
                                               round_fn.uncertainty,
                                               round_fn.train_config.eval_batch_size))[idx]
  c_mask = np.r_[np.ones(size, bool), np.zeros(capacity, bool)]
  l_mask = np.r_[np.zeros(size, bool), np.ones(len(lab), bool), np.zeros(pad, bool)]
  key = round_key(state.key, state.round, SELECT)
  if strategy == "coreset":
    want = coreset_select(feats, c_mask, l_mask, k)
  elif strategy == "typiclust":
    want = typiclust_select(key, feats, c_mask, l_mask, k, max_clusters=capacity)
  else:
    want = probcover_select(key, feats, c_mask, l_mask, k, num_classes=4)
  assert got.tolist() == idx[np.asarray(want)].tolist()
  assert set(got.tolist()) <= set(sub.tolist())
