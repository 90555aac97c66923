"""Hybrid uncertainty + clustering selection, as the first source paper (the hybrid uncertainty +
clustering paper of the `hybrid_cifar10` preset; see BUILD_NOTES.md) describes it: the top ⌈αK⌉
candidates by uncertainty, then the (1 − α)K candidates nearest to the centroids of a k-means
clustering of those uncertain candidates' CNN features.

Pure and jittable with static budgets; masks keep every shape fixed.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxal import kmeans as km
from jaxal.selection.primitives import top_k


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


__all__ = ["hybrid_select"]
