"""Cluster-Margin (Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar 2021,
"Batch Active Learning at Scale", NeurIPS): round-robin over average-linkage clusters of the
lowest-margin candidates.

`average_linkage` is O(m^2) memory in the number m of clustered candidates: for bounded candidate
sets.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import HIGHEST, checked_inputs, top_k


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
  d = jnp.sqrt(jnp.maximum(xx[:, None] - 2.0 * jnp.dot(x, x.T, precision=HIGHEST) + xx[None], 0.0))
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
  x, candidates = checked_inputs(features, (("candidates", candidates),), where)
  k = _static_int(k, "k", where, 1)
  m = min(_static_int(num_candidates, "num_candidates", where, k), x.shape[0])
  top = top_k(scores, candidates, m)
  ok = candidates[top]
  labels = average_linkage(x[top], ok, threshold, min_clusters=k if threshold <= 0 else 1)
  return top[round_robin(key, labels, k)]


__all__ = ["average_linkage", "cluster_margin_select", "round_robin"]
