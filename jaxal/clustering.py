"""Strategies built on k-means over CNN features: hybrid uncertainty+cluster selection (the first
source paper) and cluster-based annotation (the third source paper).

All functions are pure and jittable with static budgets; masks keep every shape fixed.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxal import kmeans as km
from jaxal.strategies import random_select, top_k


def hybrid_select(key: jax.Array, scores: jax.Array, features: jax.Array, candidates: jax.Array,
                  k: int, alpha: float, n_clusters: int, balanced: bool = False,
                  chunk: int = 4096) -> jax.Array:
  """Hybrid selection: the top ⌈αK⌉ candidates by `scores`, then k-means with `n_clusters` on their
  `features`, then the (1 − α)K remaining candidates nearest to a centroid.

  Args:
    scores: float [N] uncertainty (higher = more informative).
    features: float [N, D] penultimate-layer features of the pool.
    candidates: bool [N] unlabeled, selectable items.
    k: K, the round's budget (static).
    alpha: share of K taken by uncertainty, in (0, 1] (static).
    n_clusters: clusters over the uncertain set (static, 1 <= n_clusters <= ⌈αK⌉).
    balanced: False (the paper): the (1 − α)K candidates with the smallest squared distance to
      their closest centroid. True (variant `hybrid_balanced`): an equal share per centroid, taken
      round-robin, each centroid taking its nearest remaining candidate.
  Returns:
    int32 [K] distinct candidate indices: the ⌈αK⌉ uncertain ones first.
  """
  scores, features = jnp.asarray(scores), jnp.asarray(features)
  candidates = jnp.asarray(candidates, bool)
  n_top = math.ceil(alpha * k - 1e-9)
  n_rest = k - n_top
  top = top_k(scores, candidates, n_top)
  if n_rest == 0:
    return top
  res = km.kmeans(key, features[top], n_clusters, chunk=chunk)
  rest = candidates.at[top].set(False)
  if not balanced:
    _, dist = km.assign(features, res.centroids, chunk=chunk, mask=rest)
    return jnp.concatenate([top, top_k(-dist, rest, n_rest)])
  d2 = km.squared_distances(features, res.centroids, chunk=chunk)  # [N, n_clusters]

  def take(t, carry):
    chosen, free = carry
    j = t % n_clusters
    i = jnp.argmin(jnp.where(free, d2[:, j], jnp.inf)).astype(jnp.int32)
    return chosen.at[t].set(i), free.at[i].set(False)

  chosen, _ = jax.lax.fori_loop(0, n_rest, take, (jnp.zeros(n_rest, jnp.int32), rest))
  return jnp.concatenate([top, chosen])


def cluster_expert(y_true: jax.Array, assignment: jax.Array, shown: jax.Array, num_clusters: int,
                   num_classes: int, purity: float):
  """The simulated expert of cluster-based AL, shown whole clusters.

  For every shown cluster the expert looks at its members' true classes and, when the modal class
  makes up at least `purity` of the cluster, labels the cluster with it; otherwise declines.

  Args:
    y_true: int [N] ground truth.
    assignment: int [N] cluster of each pool item, -1 for items in no cluster.
    shown: bool [num_clusters] clusters shown this round.
  Returns:
    (accepted bool [num_clusters], modal class int32 [num_clusters], purity float [num_clusters]).
  """
  y_true, assignment = jnp.asarray(y_true), jnp.asarray(assignment)
  member = assignment >= 0
  seg = jnp.where(member, assignment, 0)
  counts = jax.ops.segment_sum(jax.nn.one_hot(y_true, num_classes) * member[:, None], seg,
                               num_segments=num_clusters)  # [k, C]
  size = jnp.sum(counts, axis=-1)
  top = jnp.max(counts, axis=-1)
  share = top / jnp.maximum(size, 1.0)
  # Counts are exact integers; compare top >= purity * size with a relative slack so that a cluster
  # exactly at the threshold (4 of 5 at 0.8) is accepted despite float rounding of `purity`.
  accepted = shown & (size > 0) & (top >= purity * size * (1 - 1e-6))
  return accepted, jnp.argmax(counts, axis=-1).astype(jnp.int32), share


def show_clusters(key: jax.Array, assignment: jax.Array, num_clusters: int, count: int) -> jax.Array:
  """`count` distinct non-empty clusters drawn at random: bool [num_clusters]."""
  sizes = jax.ops.segment_sum((assignment >= 0).astype(jnp.int32), jnp.where(assignment >= 0,
                              assignment, 0), num_segments=num_clusters)
  pick = random_select(key, sizes > 0, count)
  valid = (sizes > 0)[pick]
  return jnp.zeros(num_clusters, bool).at[pick].set(valid)
