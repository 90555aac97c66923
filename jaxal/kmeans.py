"""k-means that lives inside `jit`: k-means++ seeding, Lloyd iterations, assignment, inertia.

Shapes: points `x` [n, d], centroids `c` [k, d]. `k`, `max_iter`, `chunk`, `n_init` are static; the
rest may be traced, so `kmeans` runs under `jax.jit` and `jax.vmap` (over keys, i.e. seeds).

Memory: distances are computed over row chunks of `chunk` points (`lax.map`), so the largest
intermediate is [chunk, k]; nothing of size n x k x d (or n x k at once) is ever built. Centroid
updates are `segment_sum`s, O(n d).

Masking: `mask` bool [n] marks the valid points. Invalid points are never chosen by k-means++, never
move a centroid, get assignment -1 and add nothing to the inertia or to the tolerance's variance.

Convergence is scikit-learn's: stop when the labels do not change ("strict" convergence) or when the
sum over centroids of their squared move is <= `tol * mean_j var(x[:, j])` (variance over the valid
points), or after `max_iter` iterations.
"""
from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxal.selection.primitives import chunked_map, pad_rows

# Full float32 accuracy for x @ c.T on every backend (GPUs default to TF32, which moves near-ties).
_PRECISION = lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
  """Result of `kmeans`. With a leading axis when vmapped over keys."""
  centroids: jax.Array   # [k, d]
  assignment: jax.Array  # int32 [n]; index of the nearest centroid, -1 for masked-out points
  inertia: jax.Array     # float scalar: sum over valid points of the squared distance to their centroid
  converged: jax.Array   # bool scalar: stopped by the tolerance or unchanged labels, not by max_iter
  iterations: jax.Array  # int32 scalar: Lloyd iterations run


# ------------------------------------------------------------------------------------------------
# Validation and chunking helpers


def _is_concrete(a: Any) -> bool:
  return not isinstance(a, jax.core.Tracer)


def _static_int(value: Any, name: str, where: str, minimum: int) -> int:
  try:
    if isinstance(value, bool):
      raise TypeError
    value = operator.index(value)
  except TypeError:
    raise TypeError(f"{where}: {name} must be a Python int (it is static); got {value!r}.") from None
  if value < minimum:
    raise ValueError(f"{where}: {name} must be >= {minimum}; got {value}.")
  return value


def _as_points(x: Any, name: str, where: str) -> jax.Array:
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{where}: {name} must be 2-D [n, d]; got shape {tuple(x.shape)}.")
  if x.shape[0] < 1 or x.shape[1] < 1:
    raise ValueError(f"{where}: {name} must have at least one row and one column; got shape "
                     f"{tuple(x.shape)}.")
  if not jnp.issubdtype(x.dtype, jnp.floating) or jnp.finfo(x.dtype).bits < 32:
    x = x.astype(jnp.float32)  # integers and half precision: sums of many points need float32
  return x


def _as_mask(mask: Any, n: int, where: str) -> jax.Array:
  if mask is None:
    return jnp.ones((n,), bool)
  mask = jnp.asarray(mask)
  if mask.shape != (n,):
    raise ValueError(f"{where}: mask must have shape [n] = ({n},) like x's rows; got "
                     f"{tuple(mask.shape)}.")
  return mask.astype(bool)


def _check_k_vs_valid(k: int, n: int, valid: jax.Array, where: str) -> None:
  if k > n:
    raise ValueError(f"{where}: k={k} is larger than the number of points n={n}.")
  if _is_concrete(valid):
    n_valid = int(jnp.sum(valid))
    if k > n_valid:
      raise ValueError(f"{where}: k={k} is larger than the number of valid points "
                       f"(mask is True for {n_valid} of {n}).")


def _chunk_size(n: int, chunk: int) -> int:
  return max(1, min(chunk, n))


# Row chunks go through `chunked_map`; arrays used inside loops are padded once, outside them, with
# `pad_rows` (padding inside a loop body would copy the whole array every iteration), so the chunked
# maps in the loops see whole chunks and pad nothing.


# ------------------------------------------------------------------------------------------------
# Distances and assignment


def _points_centroids_chunk(x: Any, c: Any, chunk: Any, where: str):
  """Checked points [n, d], centroids [k, d] (cast to the points' dtype) and chunk size."""
  x = _as_points(x, "x", where)
  c = _as_points(c, "c", where).astype(x.dtype)
  if c.shape[1] != x.shape[1]:
    raise ValueError(f"{where}: c must be [k, d] with d={x.shape[1]} like x; got {tuple(c.shape)}.")
  return x, c, _static_int(chunk, "chunk", where, 1)


def squared_distances(x: jax.Array, c: jax.Array, chunk: int = 4096) -> jax.Array:
  """Squared Euclidean distances [n, k] between points `x` [n, d] and centroids `c` [k, d].

  Computed as ||x||^2 - 2 x.c + ||c||^2, clamped at 0, over row chunks of `chunk` points (the output
  is n x k; the intermediates are [chunk, k]). Use `assign` when only the nearest centroid is needed.
  """
  where = "squared_distances"
  x, c, chunk = _points_centroids_chunk(x, c, chunk, where)
  cc = jnp.sum(c * c, axis=-1)

  def block(xb):
    xx = jnp.sum(xb * xb, axis=-1, keepdims=True)
    return jnp.maximum(xx - 2.0 * jnp.dot(xb, c.T, precision=_PRECISION) + cc, 0.0)

  return chunked_map(block, (x,), chunk)  # pads to whole chunks and cuts the padding off


def _assign(x: jax.Array, c: jax.Array, valid: jax.Array, chunk: int):
  """Nearest centroid and its squared distance per point of `x` [N, d] (N a multiple of `chunk`),
  in row chunks: returns int32 [N], [N]. Invalid points get
  (-1, 0). The argmin uses ||c||^2 - 2 x.c (||x||^2 is constant per row); the returned distance is
  recomputed exactly as ||x - c_a||^2, so it is never negative and is 0 for a point on its centroid."""
  cc = jnp.sum(c * c, axis=-1)

  def block(xb, vb):
    scores = cc - 2.0 * jnp.dot(xb, c.T, precision=_PRECISION)  # [chunk, k]
    a = jnp.argmin(scores, axis=-1).astype(jnp.int32)
    dist = jnp.sum(jnp.square(xb - c[a]), axis=-1)
    return jnp.where(vb, a, -1), jnp.where(vb, dist, 0.0)

  return chunked_map(block, (x, valid), chunk)


def assign(x: jax.Array, c: jax.Array, chunk: int = 4096,
           mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid for each point, in row chunks (peak memory O(chunk * k)).

  Args:
    x: [n, d] points.
    c: [k, d] centroids.
    chunk: rows per chunk (static).
    mask: optional bool [n]; False rows get assignment -1 and distance 0.
  Returns:
    (assignment int32 [n], squared distance to the assigned centroid [n]). Ties go to the lower
    centroid index.
  """
  where = "assign"
  x, c, chunk = _points_centroids_chunk(x, c, chunk, where)
  n = x.shape[0]
  chunk = _chunk_size(n, chunk)
  valid = _as_mask(mask, n, where)
  a, dist = _assign(pad_rows(x, chunk), c, pad_rows(valid, chunk), chunk)
  return a[:n], dist[:n]


# ------------------------------------------------------------------------------------------------
# k-means++


def _sample_index(key: jax.Array, weights: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Indices drawn with probability proportional to `weights` [n] (>= 0, positive sum); an entry of
  weight 0 is never drawn (inverse CDF with r in (0, total])."""
  cdf = jnp.cumsum(weights)
  r = cdf[-1] * (1.0 - jax.random.uniform(key, shape, dtype=cdf.dtype))
  idx = jnp.searchsorted(cdf, r, side="left")
  return jnp.minimum(idx, weights.shape[0] - 1).astype(jnp.int32)


def _plus_plus_indices(key: jax.Array, x: jax.Array, k: int, valid: jax.Array, chunk: int,
                       n_local_trials: int) -> jax.Array:
  """Row indices [k] of the k-means++ seeds (see `kmeans_plus_plus`); `x` [N, d] and `valid` [N]
  padded to a multiple of `chunk` (padding rows invalid, so never chosen)."""
  w = valid.astype(x.dtype)
  xx = jnp.sum(x * x, axis=-1)
  first_key, loop_key = jax.random.split(key)

  def exact_to(i):  # [N] squared distance of every point to x[i], 0 for invalid points
    p = x[i]
    return chunked_map(lambda xb, wb: wb * jnp.sum(jnp.square(xb - p), axis=-1), (x, w), chunk)

  first = _sample_index(first_key, w, ())
  idx = jnp.zeros((k,), jnp.int32).at[0].set(first)
  closest = exact_to(first)  # running min squared distance to the chosen seeds [n]

  def step(i, carry):
    idx, closest = carry
    pot = jnp.sum(closest)
    # Every valid point already sits on a seed (duplicates): fall back to uniform over valid points.
    cand = _sample_index(jax.random.fold_in(loop_key, i), jnp.where(pot > 0, closest, w),
                         (n_local_trials,))
    cx, cxx = x[cand], xx[cand]

    def block(xb, xxb, closest_b):  # potential of each candidate over a row chunk -> [trials]
      d = jnp.maximum(xxb[:, None] - 2.0 * jnp.dot(xb, cx.T, precision=_PRECISION) + cxx, 0.0)
      return jnp.sum(jnp.minimum(closest_b[:, None], d), axis=0)

    pots = jnp.sum(chunked_map(block, (x, xx, closest), chunk, per_chunk=True), axis=0)
    best = cand[jnp.argmin(pots)]
    return idx.at[i].set(best), jnp.minimum(closest, exact_to(best))

  idx, _ = lax.fori_loop(1, k, step, (idx, closest))
  return idx


def _default_trials(k: int) -> int:
  return 2 + int(math.log(k))


def kmeans_plus_plus(key: jax.Array, x: jax.Array, k: int, mask: jax.Array | None = None,
                     chunk: int = 4096, n_local_trials: int | None = None) -> jax.Array:
  """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; greedy variant as in scikit-learn).

  The first seed is uniform over the valid points. Each further seed: draw `n_local_trials`
  candidates with probability proportional to D^2 (squared distance to the nearest seed so far), keep
  the candidate that most lowers the total D^2. `n_local_trials=None` means scikit-learn's
  2 + floor(log k); `n_local_trials=1` is plain k-means++. A `lax.fori_loop` over k keeps only the
  running D^2 [n] (updated with exact ||x - c||^2, so duplicates of a seed get exactly 0 and are
  never drawn again); the candidates' potentials are computed over row chunks ([chunk, trials]), so
  a step costs O(n d trials) time and O(n + chunk * trials) memory.

  Args:
    key: PRNG key.
    x: [n, d] points.
    k: number of seeds (static), 1 <= k <= number of valid points.
    mask: optional bool [n]; False rows are never chosen and add nothing to D^2.
    chunk: rows per chunk (static).
  Returns:
    centroids [k, d], rows of `x` (distinct rows whenever x has at least k distinct valid rows).
  """
  where = "kmeans_plus_plus"
  x = _as_points(x, "x", where)
  k = _static_int(k, "k", where, 1)
  chunk = _static_int(chunk, "chunk", where, 1)
  trials = _default_trials(k) if n_local_trials is None else _static_int(
      n_local_trials, "n_local_trials", where, 1)
  valid = _as_mask(mask, x.shape[0], where)
  _check_k_vs_valid(k, x.shape[0], valid, where)
  chunk = _chunk_size(x.shape[0], chunk)
  idx = _plus_plus_indices(key, pad_rows(x, chunk), k, pad_rows(valid, chunk), chunk, trials)
  return x[idx]


# ------------------------------------------------------------------------------------------------
# Lloyd iterations


def _relocate_empty(x, a, dist, valid, sums, counts):
  """Empty clusters take the valid points farthest from their centroid (farthest first, to the
  empty clusters in index order), and those points leave their old clusters (as scikit-learn does).
  Deterministic: `lax.top_k` breaks ties by index."""
  k = counts.shape[0]
  empty = counts == 0
  far = lax.top_k(jnp.where(valid, dist, -jnp.inf), k)[1]  # [k] point indices, farthest first
  rank = jnp.cumsum(empty) - 1                              # rank of each empty cluster
  take = far[jnp.clip(rank, 0, k - 1)]                      # [k] point given to cluster j if empty
  xp = jnp.where(empty[:, None], x[take], 0.0)
  old = jnp.where(empty, a[take], k)                        # k = dropped by segment_sum
  sums = sums - jax.ops.segment_sum(xp, old, num_segments=k)
  counts = counts - jax.ops.segment_sum(empty.astype(counts.dtype), old, num_segments=k)
  return jnp.where(empty[:, None], xp, sums), jnp.where(empty, 1.0, counts)


def _lloyd(x: jax.Array, valid: jax.Array, c0: jax.Array, tol_abs: jax.Array, max_iter: int,
           chunk: int) -> KMeansResult:
  """Lloyd iterations from `c0` [k, d] on `x` [N, d], `valid` [N] padded to whole chunks."""
  n, k = x.shape[0], c0.shape[0]
  w = valid.astype(x.dtype)

  def cond(state):
    _, _, _, it, converged, _ = state
    return (it < max_iter) & ~converged

  def body(state):
    c, prev_a, _, it, _, _ = state
    a, dist = _assign(x, c, valid, chunk)
    seg = jnp.where(valid, a, k)
    sums = jax.ops.segment_sum(x, seg, num_segments=k)
    counts = jax.ops.segment_sum(w, seg, num_segments=k)
    any_empty = jnp.any(counts == 0)
    sums, counts = lax.cond(any_empty, _relocate_empty, lambda *args: args[-2:],
                            x, a, dist, valid, sums, counts)
    new_c = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)
    shift = jnp.sum(jnp.square(new_c - c))
    strict = jnp.all(a == prev_a) & ~any_empty
    # Under strict convergence new_c are the means of `a`, i.e. `c` itself; keeping `c` keeps the
    # returned (centroids, assignment, distances) exactly consistent.
    c_next = jnp.where(strict, c, new_c)
    return c_next, a, dist, it + 1, strict | (shift <= tol_abs), strict

  init = (c0, jnp.full((n,), -2, jnp.int32), jnp.zeros((n,), x.dtype), jnp.zeros((), jnp.int32),
          jnp.zeros((), bool), jnp.zeros((), bool))
  c, a, dist, it, converged, strict = lax.while_loop(cond, body, init)
  # Unless the labels were already unchanged, assign once more so that the assignment and inertia
  # belong to the returned centroids.
  a, dist = lax.cond(strict, lambda: (a, dist), lambda: _assign(x, c, valid, chunk))
  return KMeansResult(c, a, jnp.sum(dist), converged, it)


def kmeans(key: jax.Array, x: jax.Array, k: int, *, mask: jax.Array | None = None,
           max_iter: int = 100, tol: float | jax.Array = 1e-4, n_init: int = 1, chunk: int = 4096,
           init: jax.Array | None = None, n_local_trials: int | None = None) -> KMeansResult:
  """k-means (Lloyd) with greedy k-means++ seeding, jittable and vmappable over `key`.

  Jit with `jax.jit(kmeans, static_argnames=("k", "max_iter", "n_init", "chunk", "n_local_trials"))`.

  Args:
    key: PRNG key (only used for k-means++; unused when `init` is given).
    x: [n, d] points (integers and 16-bit floats are cast to float32).
    k: number of clusters (static), 1 <= k <= number of valid points (checked when `mask` is
      concrete; under jit a mask with fewer than k valid points gives meaningless clusters).
    mask: optional bool [n]; False rows are ignored everywhere (assignment -1, no inertia, never a
      seed, not in the tolerance's variance).
    max_iter: maximum Lloyd iterations (static, >= 0; 0 returns the seeds).
    tol: relative tolerance as in scikit-learn: converged when the sum of squared centroid moves is
      <= tol * mean over features of the per-feature variance of the valid points (labels that do
      not change also count as converged).
    n_init: restarts (static); they run side by side (vmap over split keys) and the one with the
      lowest inertia is returned (the first on ties).
    chunk: rows per distance chunk (static); peak extra memory is O(n_init * chunk * k).
    init: optional initial centroids [k, d] instead of k-means++ (then n_init must be 1).
    n_local_trials: k-means++ candidates per seed (static); None = 2 + floor(log k), 1 = plain.
  Returns:
    KMeansResult(centroids [k, d], assignment int32 [n], inertia, converged, iterations).
    Empty clusters are re-seeded with the points farthest from their centroids, so every cluster
    is non-empty as long as there are at least k distinct valid points.
  """
  where = "kmeans"
  x = _as_points(x, "x", where)
  n, d = x.shape
  k = _static_int(k, "k", where, 1)
  max_iter = _static_int(max_iter, "max_iter", where, 0)
  n_init = _static_int(n_init, "n_init", where, 1)
  chunk = _static_int(chunk, "chunk", where, 1)
  trials = _default_trials(k) if n_local_trials is None else _static_int(
      n_local_trials, "n_local_trials", where, 1)
  if _is_concrete(tol) and not float(tol) >= 0:
    raise ValueError(f"{where}: tol must be >= 0; got {tol}.")
  valid = _as_mask(mask, n, where)
  _check_k_vs_valid(k, n, valid, where)
  if init is not None:
    init = jnp.asarray(init)
    if init.shape != (k, d):
      raise ValueError(f"{where}: init must have shape [k, d] = ({k}, {d}); got "
                       f"{tuple(init.shape)}.")
    if n_init != 1:
      raise ValueError(f"{where}: n_init={n_init} restarts make no sense with explicit init "
                       "centroids; pass n_init=1.")
    init = init.astype(x.dtype)

  # Pad once to whole chunks; padding rows are invalid everywhere and cut off at the end.
  chunk = _chunk_size(n, chunk)
  x, valid = pad_rows(x, chunk), pad_rows(valid, chunk)

  # Absolute tolerance: tol * mean per-feature variance over the valid points.
  w = valid.astype(x.dtype)
  n_valid = jnp.maximum(jnp.sum(w), 1.0)
  mean = jnp.sum(x * w[:, None], axis=0) / n_valid
  var = jnp.sum(chunked_map(lambda xb, wb: jnp.sum(wb[:, None] * jnp.square(xb - mean), axis=0),
                            (x, w), chunk, per_chunk=True), axis=0) / n_valid
  tol_abs = jnp.asarray(tol, x.dtype) * jnp.mean(var)

  def run(key):
    c0 = init if init is not None else x[_plus_plus_indices(key, x, k, valid, chunk, trials)]
    res = _lloyd(x, valid, c0, tol_abs, max_iter, chunk)
    return res._replace(assignment=res.assignment[:n])

  if n_init == 1:
    return run(key)
  results = jax.vmap(run)(jax.random.split(key, n_init))
  best = jnp.argmin(results.inertia)
  return jax.tree.map(lambda a: a[best], results)


__all__ = ["KMeansResult", "assign", "kmeans", "kmeans_plus_plus", "squared_distances"]
