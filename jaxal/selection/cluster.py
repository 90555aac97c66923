"""Cluster-based annotation, as the third source paper (the cluster-based AL paper of the
`cluster_cifar10` preset; see BUILD_NOTES.md) describes it: whole k-means clusters of CNN features
are shown to an expert, who labels a cluster with its modal class when it is pure enough.

Pure and jittable with static sizes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.selection.primitives import random_select


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


__all__ = ["cluster_expert", "show_clusters"]
