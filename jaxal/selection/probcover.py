"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022, "Active Learning Through a Covering Lens",
NeurIPS): greedy maximum coverage with balls of radius delta on L2-normalised features.

The ball graph is bool [N, N]: use it on a bounded working set (the `graph_subset` setting of its
factory in `jaxal.strategies`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal import kmeans as km
from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import (HIGHEST, argmax_free, checked_inputs, chunked_map,
                                        l2_normalize)


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
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=HIGHEST)
                    + xx[None], 0.0)
    other = valid[None] & (a[None] != ab[:, None])
    return jnp.sqrt(jnp.min(jnp.where(other, d, jnp.inf), axis=-1))

  r = chunked_map(block, (x, a), min(chunk, 256))
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
    d = jnp.maximum(jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, x.T, precision=HIGHEST)
                    + xx[None], 0.0)
    return (d < d2) & vb[:, None] & valid[None]

  return chunked_map(block, (x, valid), chunk)


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
  x, candidates, labeled = checked_inputs(
      features, (("candidates", candidates), ("labeled", labeled)), where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  num_classes = _static_int(num_classes, "num_classes", where, 1)
  if not isinstance(purity, jax.core.Tracer) and not 0 < float(purity) <= 1:
    raise ValueError(f"{where}: purity (--probcover_purity) must be in (0, 1]; got {purity}.")
  x = l2_normalize(x)
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
    best = argmax_free(gain, free, taken)
    i = jnp.where(gain[best] > 0, best, argmax_free(priority, free, taken))
    return covered | graph[i], chosen.at[t].set(i), taken.at[i].set(True)

  _, chosen, _ = lax.fori_loop(0, k, step, (covered, jnp.zeros(k, jnp.int32),
                                            jnp.zeros(n, bool)))
  return chosen


__all__ = ["ball_graph", "probcover_delta", "probcover_select"]
