"""Diversity and representativeness baselines on penultimate features, each a pure, jittable
selection with a static budget K:

  coreset_select              greedy k-center (Sener & Savarese 2018)
  badge_select                k-means++ seeding on last-layer gradient embeddings (Ash et al. 2020)
  typiclust_select            typical points of uncovered clusters (Hacohen, Dekel & Weinshall 2022)
  probcover_select            greedy ball coverage (Yehuda, Dekel, Hacohen & Weinshall 2022)
  cluster_margin_select       round-robin over average-linkage clusters of the lowest-margin
                              candidates (Citovsky et al. 2021)
  kmeans_select               the point nearest to each of K k-means centroids of the unlabeled pool
                              (DeepAL's KMeansSampling)
  margin_cluster_mean_select  medoids of K clusters of the points inside the margin (Xu, Akella &
                              Zhang 2003, "Representative sampling for text classification using
                              support vector machines", ECIR; as in google/active-learning)

Conventions: `features` float [N, D]; `candidates` bool [N] (unlabeled and selectable);
`labeled` bool [N] (the labeled set the method covers or clusters with); `k` static. Each returns
int32 [k] distinct indices of candidates (as long as at least k candidates exist). Distances are
computed in row chunks; nothing of size N x (D C) is built, and only `typiclust_select` (N x chunk
blocks) and `probcover_select` (a bool [N, N] ball graph) grow with N^2: use them on a bounded
working set (`RoundConfig.graph_subset`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxal import kmeans as km
from jaxal.strategies import top_k
from jaxal.kmeans import _static_int  # pylint: disable=protected-access

_HI = lax.Precision.HIGHEST


# ---------------------------------------------------------------------------------------------
# Small helpers

def _inputs(features, masks, where: str):
  """Checked float32 features [N, D] and bool masks [N]."""
  x = jnp.asarray(features)
  if x.ndim != 2:
    raise ValueError(f"{where}: features must be [N, D]; got shape {tuple(x.shape)}.")
  x = x.astype(jnp.float32)
  out = []
  for name, m in masks:
    m = jnp.asarray(m, bool)
    if m.shape != (x.shape[0],):
      raise ValueError(f"{where}: {name} must have shape [N] = ({x.shape[0]},); got "
                       f"{tuple(m.shape)}.")
    out.append(m)
  return (x, *out)


def _argmax_free(scores: jax.Array, free: jax.Array, taken: jax.Array) -> jax.Array:
  """The free entry with the highest score (ties: lowest index); when none is free, the first entry
  not taken yet, so greedy loops never return an index twice."""
  best = jnp.argmax(jnp.where(free, scores, -jnp.inf))
  return jnp.where(jnp.any(free), best, jnp.argmax(~taken)).astype(jnp.int32)


def _map_rows(fn, arrays, chunk: int):
  """`fn(*row_chunks)` over row chunks of `arrays` [N, ...] with `lax.map`; outputs [N, ...]
  (a tuple of outputs is returned as a tuple)."""
  n = arrays[0].shape[0]
  chunk = max(1, min(chunk, n))
  n_chunks = -(-n // chunk)
  pad = n_chunks * chunk - n

  def prep(a):
    if pad:
      a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
    return a.reshape((n_chunks, chunk) + a.shape[1:])

  out = lax.map(lambda args: fn(*args), tuple(prep(a) for a in arrays))
  return jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:])[:n], out)


def _l2_normalize(x: jax.Array) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _sample_proportional(key: jax.Array, weights: jax.Array) -> jax.Array:
  """An index drawn with probability proportional to `weights` [N] (>= 0, positive sum) by inverse
  CDF with u = uniform(key): the first i with cdf_i >= (1 - u) * total; weight-0 entries are never
  drawn."""
  cdf = jnp.cumsum(weights)
  r = cdf[-1] * (1.0 - jax.random.uniform(key, (), cdf.dtype))
  idx = jnp.searchsorted(cdf, r, side="left")
  return jnp.minimum(idx, weights.shape[0] - 1).astype(jnp.int32)


def complete(first: jax.Array, ok: jax.Array, fallback: jax.Array, candidates: jax.Array,
             k: int) -> jax.Array:
  """int32 [k]: the entries of `first` [k] where `ok` (duplicates and non-candidates dropped), in
  order, then the candidates with the highest `fallback` scores [N] not already taken."""
  n = candidates.shape[0]
  t = jnp.arange(first.shape[0])
  ok = ok & candidates[first]
  earlier = (first[None, :] == first[:, None]) & ok[None, :] & (t[None, :] < t[:, None])
  ok = ok & ~jnp.any(earlier, axis=1)
  taken = jnp.zeros(n, bool).at[jnp.where(ok, first, n)].set(True, mode="drop")
  extra = top_k(fallback, candidates & ~taken, k)
  both = jnp.concatenate([first.astype(jnp.int32), extra])
  keep = jnp.concatenate([ok, jnp.ones(k, bool)])
  order = jnp.argsort((~keep).astype(jnp.int32), stable=True)
  return both[order[:k]]


def _nearest_to_centroids(x: jax.Array, valid: jax.Array, c: jax.Array, chunk: int):
  """For each centroid of `c` [k, D], the valid point of `x` [N, D] nearest to it (ties: lowest
  index): (int32 [k], bool [k] whether any valid point exists). Row chunks: memory O(chunk k)."""
  n = x.shape[0]
  chunk = max(1, min(chunk, n))
  cc = jnp.sum(c * c, axis=-1)

  def block(xb, vb, ib):
    d = jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, c.T, precision=_HI) + cc[None]
    d = jnp.where(vb[:, None], d, jnp.inf)
    j = jnp.argmin(d, axis=0)
    return jnp.min(d, axis=0), ib[j]

  n_chunks = -(-n // chunk)
  pad = n_chunks * chunk - n
  xs = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]) if pad else x
  vs = jnp.concatenate([valid, jnp.zeros(pad, bool)]) if pad else valid
  ids = jnp.arange(n_chunks * chunk, dtype=jnp.int32)
  best, idx = lax.map(lambda a: block(*a), (xs.reshape(n_chunks, chunk, -1),
                                            vs.reshape(n_chunks, chunk),
                                            ids.reshape(n_chunks, chunk)))
  which = jnp.argmin(best, axis=0)  # [k] first chunk holding the minimum
  cols = jnp.arange(c.shape[0])
  return idx[which, cols], jnp.isfinite(best[which, cols])


# ---------------------------------------------------------------------------------------------
# Core-set (greedy k-center)

def min_squared_distances(x: jax.Array, centres: jax.Array, centre_valid: jax.Array,
                          chunk: int = 4096, centre_chunk: int = 256) -> jax.Array:
  """min over valid centres of ||x_i - c_j||^2 for every row of `x` [N, D] (+inf with no valid
  centre), scanning the centres [L, D] in blocks of `centre_chunk`: memory O(N centre_chunk)."""
  n_c = centres.shape[0]
  cc = max(1, min(centre_chunk, n_c))
  n_blocks = -(-n_c // cc)
  pad = n_blocks * cc - n_c
  if pad:
    centres = jnp.concatenate([centres, jnp.zeros((pad, centres.shape[1]), centres.dtype)])
    centre_valid = jnp.concatenate([centre_valid, jnp.zeros(pad, bool)])

  def body(run_min, block):
    cb, vb = block
    d = km.squared_distances(x, cb, chunk=chunk)
    return jnp.minimum(run_min, jnp.min(jnp.where(vb[None], d, jnp.inf), axis=1)), None

  out, _ = lax.scan(body, jnp.full((x.shape[0],), jnp.inf, x.dtype),
                    (centres.reshape(n_blocks, cc, -1), centre_valid.reshape(n_blocks, cc)))
  return out


def coreset_select(features: jax.Array, candidates: jax.Array, labeled: jax.Array, k: int,
                   max_labeled: int | None = None, chunk: int = 4096) -> jax.Array:
  """Core-set by greedy k-center (Sener & Savarese 2018, "Active Learning for Convolutional Neural
  Networks: A Core-Set Approach", ICLR; Algorithm 1).

  Repeatedly takes the candidate farthest (Euclidean) from its nearest centre, the centres being
  the labeled points and the points chosen so far. Cost O(N L D) for the initial distances to the
  L labeled points (centre blocks of 256) plus O(N D) per pick; memory O(N). The paper's robust
  (MIP) refinement is not implemented.

  Args:
    features: float [N, D] penultimate features.
    candidates, labeled: bool [N].
    k: static budget.
    max_labeled: static bound on the number of labeled points (they are gathered into a buffer of
      this size; extra ones are ignored); default N. `ask` passes the run's capacity.
  Returns:
    int32 [k] distinct indices in the order chosen. With no labeled point the first pick is the
    lowest-index candidate.
  """
  where = "coreset_select"
  x, candidates, labeled = _inputs(features, (("candidates", candidates), ("labeled", labeled)),
                                   where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  size = n if max_labeled is None else _static_int(max_labeled, "max_labeled", where, 1)
  size = min(size, n)
  lab_idx = jnp.nonzero(labeled, size=size, fill_value=0)[0]
  lab_ok = jnp.arange(size) < jnp.sum(labeled)
  dist = min_squared_distances(x, x[lab_idx], lab_ok, chunk)

  def step(t, carry):
    dist, chosen, taken = carry
    i = _argmax_free(dist, candidates & ~taken, taken)
    dist = jnp.minimum(dist, jnp.sum(jnp.square(x - x[i]), axis=-1))
    return dist, chosen.at[t].set(i), taken.at[i].set(True)

  _, chosen, _ = lax.fori_loop(0, k, step, (dist, jnp.zeros(k, jnp.int32), jnp.zeros(n, bool)))
  return chosen


# ---------------------------------------------------------------------------------------------
# BADGE

def gradient_embedding(probs: jax.Array, features: jax.Array) -> jax.Array:
  """BADGE's gradient embedding, materialised (for small inputs and tests): the gradient of the
  cross-entropy at the predicted class ŷ = argmax p with respect to the classifier's kernel [D, C],
  g = h (p - e_ŷ)^T, flattened row-major to [N, D * C]. `badge_select` never builds it."""
  r = probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  return (features[:, :, None] * r[:, None, :]).reshape(features.shape[0], -1)


def gradient_sq_distances(probs: jax.Array, features: jax.Array, i: jax.Array) -> jax.Array:
  """||g_n - g_i||^2 for every n without building g: ||g_n||^2 = ||r_n||^2 ||h_n||^2 and
  <g_n, g_i> = <r_n, r_i> <h_n, h_i>, r = p - e_ŷ. float32 [N], clamped at 0."""
  r = probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  norm2 = jnp.sum(r * r, -1) * jnp.sum(features * features, -1)
  dot = jnp.dot(r, r[i], precision=_HI) * jnp.dot(features, features[i], precision=_HI)
  return jnp.maximum(norm2 + norm2[i] - 2.0 * dot, 0.0)


def badge_select(key: jax.Array, probs: jax.Array, features: jax.Array, candidates: jax.Array,
                 k: int) -> jax.Array:
  """BADGE (Ash, Zhang, Krishnamurthy, Langford & Agarwal 2020, "Deep Batch Active Learning by
  Diverse, Uncertain Gradient Lower Bounds", ICLR): k-means++ seeding on the gradient embeddings
  g_n = h_n (p_n - e_ŷn)^T of the last layer's kernel (bias excluded, as in the authors' code).

  As in the authors' `init_centers`: the first point has the largest ||g||; each further point is
  drawn with probability proportional to its squared distance to the nearest point chosen so far
  (plain D^2 sampling, no local trials), among the candidates not chosen yet (uniform among them if
  every remaining distance is 0). Step t draws u_t = uniform(fold_in(key, t)) and takes the first
  index whose D^2 cumulative sum reaches (1 - u_t) * total. Distances use the factorised inner
  products (`gradient_sq_distances`): O(N (C + D)) time and memory per step, never N x (D C).

  Args:
    probs: float [N, C] class probabilities of the network whose features are given.
    features: float [N, D] the classifier layer's input.
  Returns:
    int32 [k] distinct indices in the order chosen.
  """
  where = "badge_select"
  x, candidates = _inputs(features, (("candidates", candidates),), where)
  probs = jnp.asarray(probs, jnp.float32)
  n = x.shape[0]
  if probs.ndim != 2 or probs.shape[0] != n:
    raise ValueError(f"{where}: probs must be [N, C] with N = {n} like features; got "
                     f"{tuple(probs.shape)}.")
  k = _static_int(k, "k", where, 1)
  r = probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  norm2 = jnp.sum(r * r, -1) * jnp.sum(x * x, -1)
  taken = jnp.zeros(n, bool)
  first = _argmax_free(norm2, candidates, taken)
  dist = gradient_sq_distances(probs, x, first)

  def step(t, carry):
    dist, chosen, taken = carry
    free = candidates & ~taken
    w = jnp.where(free, dist, 0.0)
    w = jnp.where(jnp.sum(w) > 0, w, free.astype(w.dtype))
    i = _sample_proportional(jax.random.fold_in(key, t), w)
    i = jnp.where(jnp.any(free), i, jnp.argmax(~taken)).astype(jnp.int32)
    dist = jnp.minimum(dist, gradient_sq_distances(probs, x, i))
    return dist, chosen.at[t].set(i), taken.at[i].set(True)

  chosen = jnp.zeros(k, jnp.int32).at[0].set(first)
  _, chosen, _ = lax.fori_loop(1, k, step, (dist, chosen, taken.at[first].set(True)))
  return chosen


# ---------------------------------------------------------------------------------------------
# k-means sampling and margin-cluster-mean

def kmeans_select(key: jax.Array, features: jax.Array, candidates: jax.Array, k: int,
                  chunk: int = 4096) -> jax.Array:
  """K-means sampling (the KMeansSampling baseline of DeepAL / DeepAL+): k-means with K clusters
  (`jaxal.kmeans`, k-means++ seeding) over the candidates' features, then for every centroid the
  candidate nearest to it. Should two centroids share their nearest point, the remaining places go to
  the candidates nearest to any centroid. Returns int32 [k] in centroid order."""
  where = "kmeans_select"
  x, candidates = _inputs(features, (("candidates", candidates),), where)
  k = _static_int(k, "k", where, 1)
  res = km.kmeans(key, x, k, mask=candidates, chunk=chunk)
  first, ok = _nearest_to_centroids(x, candidates, res.centroids, chunk)
  _, dist = km.assign(x, res.centroids, chunk=chunk, mask=candidates)
  return complete(first, ok, -dist, candidates, k)


def margin_cluster_mean_select(key: jax.Array, margins: jax.Array, features: jax.Array,
                               candidates: jax.Array, labeled: jax.Array, k: int,
                               chunk: int = 4096) -> jax.Array:
  """Representative margin sampling (Xu, Akella & Zhang 2003), as google/active-learning's
  `margin_cluster_mean` (RepresentativeClusterMeanSampling) does it, with a softmax network's margin
  in place of the SVM's decision values.

  The points "inside the margin" are the candidates whose margin p_(1) - p_(2) is smaller than the
  smallest margin of a labeled point. With fewer than K of them this is plain margin sampling (the K
  smallest margins). Otherwise k-means with K clusters over their features; each centroid's nearest
  inside point (its medoid), ordered by margin, then the smallest margins fill the places that
  duplicate medoids leave.

  Args:
    margins: float [N] p_(1) - p_(2) (small = uncertain).
  Returns:
    int32 [k] distinct candidate indices.
  """
  where = "margin_cluster_mean_select"
  x, candidates, labeled = _inputs(features, (("candidates", candidates), ("labeled", labeled)),
                                   where)
  k = _static_int(k, "k", where, 1)
  margins = jnp.asarray(margins, jnp.float32)
  threshold = jnp.min(jnp.where(labeled, margins, jnp.inf))
  inside = candidates & (margins < threshold)

  def clustered(inside):  # an operand, so k-means sees a tracer and skips its eager count check
    res = km.kmeans(key, x, k, mask=inside, chunk=chunk)
    first, ok = _nearest_to_centroids(x, inside, res.centroids, chunk)
    order = jnp.argsort(jnp.where(ok, margins[first], jnp.inf), stable=True)
    return complete(first[order], ok[order], -margins, candidates, k)

  return lax.cond(jnp.sum(inside) >= k, clustered, lambda _: top_k(-margins, candidates, k),
                  inside)


# ---------------------------------------------------------------------------------------------
# Cluster-Margin

def average_linkage(x: jax.Array, valid: jax.Array, threshold: float = 0.0,
                    min_clusters: int = 1) -> jax.Array:
  """Agglomerative clustering with average linkage on Euclidean distances (what
  `scipy.cluster.hierarchy.linkage(x, "average")` followed by `fcluster` computes), in JAX.

  Merges the two closest clusters (Lance-Williams update of a dense [m, m] distance matrix) while
  more than `min_clusters` remain and, when `threshold` > 0, while their average distance is
  <= `threshold`. O(m^2) memory, O(m^3) time: for the bounded candidate sets of Cluster-Margin.

  Returns:
    int32 [m] cluster label of every valid point (the smallest index among its members), -1 for
    invalid points.
  """
  m = x.shape[0]
  xx = jnp.sum(x * x, -1)
  d = jnp.sqrt(jnp.maximum(xx[:, None] - 2.0 * jnp.dot(x, x.T, precision=_HI) + xx[None], 0.0))
  idx = jnp.arange(m)
  pair = valid[:, None] & valid[None, :] & (idx[:, None] != idx[None, :])
  d = jnp.where(pair, d, jnp.inf)
  limit = jnp.where(jnp.asarray(threshold) > 0, jnp.asarray(threshold, d.dtype), jnp.inf)

  def cond(carry):
    d, _, _, n_clusters = carry
    return (n_clusters > min_clusters) & (jnp.min(d) <= limit)

  def body(carry):
    d, size, labels, n_clusters = carry
    flat = jnp.argmin(d)
    i, j = flat // m, flat % m  # i < j: the row-major first of a symmetric pair
    new = (size[i] * d[i] + size[j] * d[j]) / (size[i] + size[j])
    new = new.at[i].set(jnp.inf).at[j].set(jnp.inf)
    d = d.at[i, :].set(new).at[:, i].set(new).at[j, :].set(jnp.inf).at[:, j].set(jnp.inf)
    size = size.at[i].add(size[j]).at[j].set(0.0)
    labels = jnp.where(labels == j, i, labels)
    return d, size, labels, n_clusters - 1

  init = (d, valid.astype(d.dtype), jnp.where(valid, idx, -1).astype(jnp.int32),
          jnp.sum(valid).astype(jnp.int32))
  _, _, labels, _ = lax.while_loop(cond, body, init)
  return labels


def round_robin(key: jax.Array, labels: jax.Array, k: int) -> jax.Array:
  """Cluster-Margin's sampling (Citovsky et al. 2021, Algorithm 1): clusters in ascending order of
  size (ties: lower label), one random member of each in turn, cycling and skipping exhausted
  clusters, until k are taken. `labels` int32 [m] in [0, m) or -1 (not a point). Returns int32 [k]
  positions into `labels` (points with label -1 only when fewer than k points exist)."""
  m = labels.shape[0]
  ok = labels >= 0
  lab = jnp.where(ok, labels, m)
  size = jax.ops.segment_sum(ok.astype(jnp.int32), lab, num_segments=m + 1)[:m]
  big = jnp.iinfo(jnp.int32).max
  corder = jnp.lexsort((jnp.arange(m), jnp.where(size > 0, size, big)))
  cpos = jnp.zeros(m, jnp.int32).at[corder].set(jnp.arange(m, dtype=jnp.int32))
  u = jax.random.uniform(key, (m,))
  porder = jnp.lexsort((u, lab))  # by cluster, then random
  sorted_lab = lab[porder]
  first = jax.ops.segment_min(jnp.arange(m), sorted_lab, num_segments=m + 1)
  rank = jnp.zeros(m, jnp.int32).at[porder].set(jnp.arange(m) - first[sorted_lab])
  order_key = jnp.where(ok, rank * m + cpos[jnp.where(ok, labels, 0)], big)
  return jnp.argsort(order_key, stable=True)[:k].astype(jnp.int32)


def cluster_margin_select(key: jax.Array, scores: jax.Array, features: jax.Array,
                          candidates: jax.Array, k: int, num_candidates: int,
                          threshold: float = 0.0) -> jax.Array:
  """Cluster-Margin (Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar 2021,
  "Batch Active Learning at Scale", NeurIPS).

  The k_m = `num_candidates` candidates of lowest margin (highest `scores`), grouped by
  average-linkage agglomerative clustering of their features, then `round_robin` over the clusters
  (smallest first) until K are taken.

  Deviation: the paper clusters the whole pool once, with the first model's embeddings, and restricts
  those clusters to the k_m candidates each round. A pure round has no place to keep clusters across
  rounds and HAC of a whole pool is O(N^2) memory, so here the k_m candidates themselves are
  clustered every round, with the current model's features. `threshold` is the paper's distance
  threshold epsilon (Euclidean, average linkage); with `threshold` <= 0 merging stops at K clusters
  instead, so the batch takes one random member of each.

  Args:
    scores: float [N] margin uncertainty, 1 - (p_(1) - p_(2)) (higher = smaller margin).
    num_candidates: static k_m >= k.
  Returns:
    int32 [k] distinct candidate indices.
  """
  where = "cluster_margin_select"
  x, candidates = _inputs(features, (("candidates", candidates),), where)
  k = _static_int(k, "k", where, 1)
  m = min(_static_int(num_candidates, "num_candidates", where, k), x.shape[0])
  top = top_k(scores, candidates, m)
  ok = candidates[top]
  labels = average_linkage(x[top], ok, threshold, min_clusters=k if threshold <= 0 else 1)
  return top[round_robin(key, labels, k)]


# ---------------------------------------------------------------------------------------------
# TypiClust

def _kmeans_active(key: jax.Array, x: jax.Array, valid: jax.Array, k_max: int,
                   n_active: jax.Array, max_iter: int, chunk: int):
  """k-means with a traced number of clusters n_active <= k_max (static): the first n_active seeds
  of greedy k-means++ with k_max seeds (a prefix of k-means++ is k-means++), then Lloyd iterations
  that ignore the other centroids, until the assignment stops changing or `max_iter`. An emptied
  cluster keeps its centroid. Returns (centroids [k_max, D], assignment int32 [N], -1 invalid)."""
  c0 = km.kmeans_plus_plus(key, x, k_max, mask=valid, chunk=chunk,
                           n_local_trials=2 + int(math.log(k_max)))
  active = jnp.arange(k_max) < n_active

  def assign(c):
    cc = jnp.where(active, jnp.sum(c * c, -1), jnp.inf)

    def block(xb, vb):
      a = jnp.argmin(cc[None] - 2.0 * jnp.dot(xb, c.T, precision=_HI), axis=-1)
      return jnp.where(vb, a, -1).astype(jnp.int32)

    return _map_rows(block, (x, valid), chunk)

  def cond(carry):
    _, _, it, changed = carry
    return changed & (it < max_iter)

  def body(carry):
    c, a, it, _ = carry
    seg = jnp.where(valid, a, k_max)
    sums = jax.ops.segment_sum(x, seg, num_segments=k_max + 1)[:k_max]
    counts = jax.ops.segment_sum(valid.astype(x.dtype), seg, num_segments=k_max + 1)[:k_max]
    c = jnp.where((counts > 0)[:, None], sums / jnp.maximum(counts, 1.0)[:, None], c)
    new = assign(c)
    return c, new, it + 1, jnp.any(new != a)

  c, a, _, _ = lax.while_loop(cond, body, (c0, assign(c0), jnp.zeros((), jnp.int32),
                                           jnp.ones((), bool)))
  return c, a


def typicality(features: jax.Array, assignment: jax.Array, members: jax.Array,
               n_neighbors: jax.Array, max_neighbors: int, chunk: int = 256) -> jax.Array:
  """TypiClust's typicality 1 / (mean squared distance to the n nearest other members of the same
  cluster + 1e-5), with n = `n_neighbors` [N] per point (<= `max_neighbors`, static); 1e5 when n = 0.
  Only `members` count as neighbours. Row chunks of [chunk, N] distances."""
  x = features
  n = x.shape[0]
  nn = max(1, min(max_neighbors, n - 1))
  xx = jnp.sum(x * x, -1)
  ids = jnp.arange(n)

  def block(xb, ab, ib, kb):
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=_HI)
                    + xx[None], 0.0)
    same = (assignment[None] == ab[:, None]) & members[None] & (ids[None] != ib[:, None])
    near = -lax.top_k(-jnp.where(same, d, jnp.inf), nn)[0]  # [B, nn] ascending
    use = jnp.arange(nn)[None] < kb[:, None]
    mean = jnp.sum(jnp.where(use, near, 0.0), -1) / jnp.maximum(kb, 1)
    return 1.0 / (mean + 1e-5)

  return _map_rows(block, (x, assignment, ids, n_neighbors.astype(jnp.int32)), chunk)


def typiclust_select(key: jax.Array, features: jax.Array, candidates: jax.Array,
                     labeled: jax.Array, k: int, max_clusters: int = 500, n_neighbors: int = 20,
                     min_cluster_size: int = 5, max_iter: int = 100,
                     chunk: int = 1024) -> jax.Array:
  """TypiClust (Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget: Opposite Strategies
  Suit High and Low Budgets", ICML), following the authors' implementation.

  k-means over the labeled and candidate points (L2-normalised features) into min(|L| + K,
  `max_clusters`) clusters; clusters of more than `min_cluster_size` points ordered by fewest
  labeled members, then largest size; pick t takes, from cluster t mod (number of those clusters),
  the candidate of highest typicality: 1 / (mean squared distance to its min(`n_neighbors`, m // 2)
  nearest candidates in the same cluster + 1e-5), m the cluster's candidate count.

  Deviations: the authors recompute a cluster's typicality without the points already taken when
  a cluster is visited a second time (only when K exceeds the number of clusters); here it is
  computed once per round and the next most typical member is taken. k-means is jaxal's
  (k-means++ and Lloyd) rather than scikit-learn's (MiniBatch)KMeans. When no cluster is larger than
  `min_cluster_size`, all non-empty clusters take part.

  Args:
    max_clusters: static cap on the number of clusters (the authors use 500); `ask` passes
      min(max_clusters, capacity), which bounds |L| + K.
  Returns:
    int32 [k] distinct candidate indices.
  """
  where = "typiclust_select"
  x, candidates, labeled = _inputs(features, (("candidates", candidates), ("labeled", labeled)),
                                   where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  k_max = min(_static_int(max_clusters, "max_clusters", where, 1), n)
  n_neighbors = _static_int(n_neighbors, "n_neighbors", where, 1)
  x = _l2_normalize(x)
  points = candidates | labeled
  n_active = jnp.minimum(jnp.minimum(jnp.sum(labeled & ~candidates) + k, k_max), jnp.sum(points))
  n_active = jnp.maximum(n_active, 1)
  _, assignment = _kmeans_active(key, x, points, k_max, n_active, max_iter, chunk)
  seg = jnp.where(points, assignment, k_max)
  count = lambda mask: jax.ops.segment_sum(mask.astype(jnp.int32), seg,
                                           num_segments=k_max + 1)[:k_max]
  size, n_labeled, n_cand = count(points), count(labeled & ~candidates), count(candidates)
  eligible = size > min_cluster_size
  eligible = jnp.where(jnp.any(eligible), eligible, size > 0)
  order = jnp.lexsort((jnp.arange(k_max), -size, n_labeled, ~eligible))
  n_eligible = jnp.maximum(jnp.sum(eligible), 1)
  kk = jnp.minimum(n_neighbors, n_cand // 2)
  typ = typicality(x, assignment, candidates, kk[jnp.maximum(assignment, 0)], n_neighbors,
                   min(chunk, 256))

  def step(t, carry):
    chosen, taken = carry
    free = candidates & ~taken
    cluster = order[t % n_eligible]
    inside = free & (assignment == cluster)
    i = jnp.where(jnp.any(inside), jnp.argmax(jnp.where(inside, typ, -jnp.inf)),
                  _argmax_free(typ, free, taken)).astype(jnp.int32)
    return chosen.at[t].set(i), taken.at[i].set(True)

  chosen, _ = lax.fori_loop(0, k, step, (jnp.zeros(k, jnp.int32), jnp.zeros(n, bool)))
  return chosen


# ---------------------------------------------------------------------------------------------
# ProbCover

def probcover_delta(key: jax.Array, features: jax.Array, valid: jax.Array, num_classes: int,
                    purity: float = 0.95, chunk: int = 1024) -> jax.Array:
  """ProbCover's ball radius: the largest δ at which at least a `purity` share of the valid points
  have a pure ball, purity measured against k-means pseudo-labels with `num_classes` clusters
  (Yehuda et al. 2022, Sec. 4). With open balls B_δ(x) = {x' : ||x' - x|| < δ}, x's ball is pure iff
  δ <= r(x), the distance from x to the nearest point of another cluster, so δ is the
  (floor((1 - purity) n) + 1)-th smallest r over the n valid points (exact, where the paper scans a
  grid), less a relative 1e-5 so that rounding cannot put that point's nearest other-cluster point
  inside its ball. +inf when there is a single cluster."""
  x = features
  res = km.kmeans(key, x, num_classes, mask=valid, chunk=chunk)
  a = res.assignment
  xx = jnp.sum(x * x, -1)

  def block(xb, ab):
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=_HI)
                    + xx[None], 0.0)
    other = valid[None] & (a[None] != ab[:, None])
    return jnp.sqrt(jnp.min(jnp.where(other, d, jnp.inf), axis=-1))

  r = _map_rows(block, (x, a), min(chunk, 256))
  r = jnp.sort(jnp.where(valid, r, jnp.inf))
  j = jnp.floor((1.0 - purity) * jnp.sum(valid)).astype(jnp.int32)
  return r[jnp.clip(j, 0, r.shape[0] - 1)] * (1.0 - 1e-5)


def ball_graph(features: jax.Array, valid: jax.Array, delta: jax.Array,
               chunk: int = 256) -> jax.Array:
  """bool [N, N]: ||x_i - x_j|| < delta between valid points (computed in row chunks)."""
  x = features
  xx = jnp.sum(x * x, -1)
  d2 = jnp.square(delta)

  def block(xb, vb):
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=_HI)
                    + xx[None], 0.0)
    return (d < d2) & vb[:, None] & valid[None]

  return _map_rows(block, (x, valid), chunk)


def probcover_select(key: jax.Array, features: jax.Array, candidates: jax.Array,
                     labeled: jax.Array, k: int, delta: float = 0.0, purity: float = 0.95,
                     num_classes: int = 10, chunk: int = 1024) -> jax.Array:
  """ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022, "Active Learning Through a Covering Lens",
  NeurIPS): greedy maximum coverage with balls of radius δ on L2-normalised features.

  Points within δ of a labeled point are covered; each pick is the candidate whose ball holds the
  most uncovered points (ties: lowest index), after which its ball is covered. When no candidate
  covers anything new, the rest are drawn at random (as the authors' code does).

  Args:
    delta: the ball radius; <= 0 picks it by `probcover_delta` (k-means with `num_classes` clusters,
      `purity` share of pure balls; the paper's alpha = 0.95).
  Memory: the bool [N, N] ball graph; O(N^2) per pick. Use on a bounded working set.
  Returns:
    int32 [k] distinct candidate indices.
  """
  where = "probcover_select"
  x, candidates, labeled = _inputs(features, (("candidates", candidates), ("labeled", labeled)),
                                   where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  num_classes = _static_int(num_classes, "num_classes", where, 1)
  if not isinstance(purity, jax.core.Tracer) and not 0 < float(purity) <= 1:
    raise ValueError(f"{where}: purity (--probcover_purity) must be in (0, 1]; got {purity}.")
  x = _l2_normalize(x)
  points = candidates | labeled
  delta_key, pick_key = jax.random.split(key)
  if isinstance(delta, jax.core.Tracer) or float(delta) <= 0:
    auto = probcover_delta(delta_key, x, points, min(num_classes, n), purity, chunk)
    radius = auto if not isinstance(delta, jax.core.Tracer) else jnp.where(delta > 0, delta, auto)
  else:
    radius = jnp.asarray(delta, jnp.float32)
  graph = ball_graph(x, points, radius, min(chunk, 256))
  covered = points & (labeled | jnp.any(graph & labeled[None], axis=1))
  priority = jax.random.uniform(pick_key, (n,))

  def step(t, carry):
    covered, chosen, taken = carry
    free = candidates & ~taken
    gain = jnp.sum(graph & ~covered[None], axis=1)
    best = _argmax_free(gain, free, taken)
    i = jnp.where(gain[best] > 0, best, _argmax_free(priority, free, taken))
    return covered | graph[i], chosen.at[t].set(i), taken.at[i].set(True)

  _, chosen, _ = lax.fori_loop(0, k, step, (covered, jnp.zeros(k, jnp.int32),
                                            jnp.zeros(n, bool)))
  return chosen


__all__ = ["average_linkage", "badge_select", "ball_graph", "cluster_margin_select", "complete",
           "coreset_select", "gradient_embedding", "gradient_sq_distances", "kmeans_select",
           "margin_cluster_mean_select", "min_squared_distances", "probcover_delta",
           "probcover_select", "round_robin", "typicality", "typiclust_select"]
