"""Core-set by greedy k-center (Sener & Savarese 2018, "Active Learning for Convolutional Neural
Networks: A Core-Set Approach", ICLR): repeatedly the candidate farthest from the labeled points and
the points chosen so far, on penultimate features.

Distances to the labeled points are scanned in centre blocks (`min_squared_distances`): memory O(N).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal import kmeans as km
from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import argmax_free, checked_inputs, pad_rows


def min_squared_distances(x: jax.Array, centres: jax.Array, centre_valid: jax.Array,
                          chunk: int = 4096, centre_chunk: int = 256) -> jax.Array:
  """min over valid centres of ||x_i - c_j||^2 for every row of `x` [N, D] (+inf with no valid
  centre), scanning the centres [L, D] in blocks of `centre_chunk`: memory O(N centre_chunk)."""
  n_c = centres.shape[0]
  cc = max(1, min(centre_chunk, n_c))
  n_blocks = -(-n_c // cc)
  centres, centre_valid = pad_rows(centres, cc), pad_rows(centre_valid, cc)  # invalid padding

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
      this size; extra ones are ignored); default N. `jaxal.strategies.coreset` passes the
      round's capacity.
  Returns:
    int32 [k] distinct indices in the order chosen. With no labeled point the first pick is the
    lowest-index candidate.
  """
  where = "coreset_select"
  x, candidates, labeled = checked_inputs(
      features, (("candidates", candidates), ("labeled", labeled)), where)
  n = x.shape[0]
  k = _static_int(k, "k", where, 1)
  size = n if max_labeled is None else _static_int(max_labeled, "max_labeled", where, 1)
  size = min(size, n)
  lab_idx = jnp.nonzero(labeled, size=size, fill_value=0)[0]
  lab_ok = jnp.arange(size) < jnp.sum(labeled)
  dist = min_squared_distances(x, x[lab_idx], lab_ok, chunk)

  def step(t, carry):
    dist, chosen, taken = carry
    i = argmax_free(dist, candidates & ~taken, taken)
    dist = jnp.minimum(dist, jnp.sum(jnp.square(x - x[i]), axis=-1))
    return dist, chosen.at[t].set(i), taken.at[i].set(True)

  _, chosen, _ = lax.fori_loop(0, k, step, (dist, jnp.zeros(k, jnp.int32), jnp.zeros(n, bool)))
  return chosen


__all__ = ["coreset_select", "min_squared_distances"]
