"""K-means sampling (the KMeansSampling baseline of DeepAL / DeepAL+): the candidate nearest to each
of K k-means centroids of the unlabeled pool.
"""
from __future__ import annotations

import jax

from jaxal import kmeans as km
from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import checked_inputs, complete, nearest_to_centroids


def kmeans_select(key: jax.Array, features: jax.Array, candidates: jax.Array, k: int,
                  chunk: int = 4096) -> jax.Array:
  """K-means sampling (the KMeansSampling baseline of DeepAL / DeepAL+): k-means with K clusters
  (`jaxal.kmeans`, k-means++ seeding) over the candidates' features, then for every centroid the
  candidate nearest to it. Should two centroids share their nearest point, the remaining places go to
  the candidates nearest to any centroid. Returns int32 [k] in centroid order."""
  where = "kmeans_select"
  x, candidates = checked_inputs(features, (("candidates", candidates),), where)
  k = _static_int(k, "k", where, 1)
  res = km.kmeans(key, x, k, mask=candidates, chunk=chunk)
  first, ok = nearest_to_centroids(x, candidates, res.centroids, chunk)
  _, dist = km.assign(x, res.centroids, chunk=chunk, mask=candidates)
  return complete(first, ok, -dist, candidates, k)


__all__ = ["kmeans_select"]
