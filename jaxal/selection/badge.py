"""BADGE (Ash, Zhang, Krishnamurthy, Langford & Agarwal 2020, "Deep Batch Active Learning by
Diverse, Uncertain Gradient Lower Bounds", ICLR): k-means++ seeding on the last layer's gradient
embeddings, with the distances factorised so that nothing of size N x (D C) is built.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import HIGHEST, argmax_free, checked_inputs, sample_proportional


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
  dot = jnp.dot(r, r[i], precision=HIGHEST) * jnp.dot(features, features[i], precision=HIGHEST)
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
  x, candidates = checked_inputs(features, (("candidates", candidates),), where)
  probs = jnp.asarray(probs, jnp.float32)
  n = x.shape[0]
  if probs.ndim != 2 or probs.shape[0] != n:
    raise ValueError(f"{where}: probs must be [N, C] with N = {n} like features; got "
                     f"{tuple(probs.shape)}.")
  k = _static_int(k, "k", where, 1)
  r = probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
  norm2 = jnp.sum(r * r, -1) * jnp.sum(x * x, -1)
  taken = jnp.zeros(n, bool)
  first = argmax_free(norm2, candidates, taken)
  dist = gradient_sq_distances(probs, x, first)

  def step(t, carry):
    dist, chosen, taken = carry
    free = candidates & ~taken
    w = jnp.where(free, dist, 0.0)
    w = jnp.where(jnp.sum(w) > 0, w, free.astype(w.dtype))
    i = sample_proportional(jax.random.fold_in(key, t), w)
    i = jnp.where(jnp.any(free), i, jnp.argmax(~taken)).astype(jnp.int32)
    dist = jnp.minimum(dist, gradient_sq_distances(probs, x, i))
    return dist, chosen.at[t].set(i), taken.at[i].set(True)

  chosen = jnp.zeros(k, jnp.int32).at[0].set(first)
  _, chosen, _ = lax.fori_loop(1, k, step, (dist, chosen, taken.at[first].set(True)))
  return chosen


__all__ = ["badge_select", "gradient_embedding", "gradient_sq_distances"]
