"""TypiClust (Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget: Opposite Strategies
Suit High and Low Budgets", ICML): the most typical candidate of each of the least covered, largest
k-means clusters.

Typicality needs [chunk, N] distance blocks, so the cost grows with N^2: use it on a bounded working
set (the `graph_subset` setting of its factory in `jaxal.strategies`).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxal import kmeans as km
from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import (HIGHEST, argmax_free, checked_inputs, chunked_map,
                                        l2_normalize)


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
      a = jnp.argmin(cc[None] - 2.0 * jnp.dot(xb, c.T, precision=HIGHEST), axis=-1)
      return jnp.where(vb, a, -1).astype(jnp.int32)

    return chunked_map(block, (x, valid), chunk)

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
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=HIGHEST)
                    + xx[None], 0.0)
    same = (assignment[None] == ab[:, None]) & members[None] & (ids[None] != ib[:, None])
    near = -lax.top_k(-jnp.where(same, d, jnp.inf), nn)[0]  # [B, nn] ascending
    use = jnp.arange(nn)[None] < kb[:, None]
    mean = jnp.sum(jnp.where(use, near, 0.0), -1) / jnp.maximum(kb, 1)
    return 1.0 / (mean + 1e-5)

  return chunked_map(block, (x, assignment, ids, n_neighbors.astype(jnp.int32)), chunk)


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
    max_clusters: static cap on the number of clusters (the authors use 500);
      `jaxal.strategies.typiclust` passes min(max_clusters, capacity), which bounds |L| + K.
  Returns:
    int32 [k] distinct candidate indices.
  """
  where = "typiclust_select"
  x, candidates, labeled = checked_inputs(
      features, (("candidates", candidates), ("labeled", labeled)), where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  k_max = min(_static_int(max_clusters, "max_clusters", where, 1), n)
  n_neighbors = _static_int(n_neighbors, "n_neighbors", where, 1)
  x = l2_normalize(x)
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
                  argmax_free(typ, free, taken)).astype(jnp.int32)
    return chosen.at[t].set(i), taken.at[i].set(True)

  chosen, _ = lax.fori_loop(0, k, step, (jnp.zeros(k, jnp.int32), jnp.zeros(n, bool)))
  return chosen


__all__ = ["typicality", "typiclust_select"]
