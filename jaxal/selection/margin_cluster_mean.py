"""Representative margin sampling (Xu, Akella & Zhang 2003, "Representative sampling for text
classification using support vector machines", ECIR; as google/active-learning's
`margin_cluster_mean`): medoids of K k-means clusters of the points inside the margin.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal import kmeans as km
from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import checked_inputs, complete, nearest_to_centroids, top_k


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
  x, candidates, labeled = checked_inputs(
      features, (("candidates", candidates), ("labeled", labeled)), where)
  k = _static_int(k, "k", where, 1)
  margins = jnp.asarray(margins, jnp.float32)
  threshold = jnp.min(jnp.where(labeled, margins, jnp.inf))
  inside = candidates & (margins < threshold)

  def clustered(inside):  # an operand, so k-means sees a tracer and skips its eager count check
    res = km.kmeans(key, x, k, mask=inside, chunk=chunk)
    first, ok = nearest_to_centroids(x, inside, res.centroids, chunk)
    order = jnp.argsort(jnp.where(ok, margins[first], jnp.inf), stable=True)
    return complete(first[order], ok[order], -margins, candidates, k)

  return lax.cond(jnp.sum(inside) >= k, clustered, lambda _: top_k(-margins, candidates, k),
                  inside)


__all__ = ["margin_cluster_mean_select"]
