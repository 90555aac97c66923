"""Primitives shared by the selection algorithms: top-K and random selection, a masked greedy
argmax, D^2-style proportional sampling, completing a batch from a fallback ranking, the point
nearest each centroid, and the one chunked row map (`chunked_map`) that `jaxal.kmeans`,
`jaxal.training.apply_in_chunks` and the selections use to keep memory O(chunk).

Everything is pure `jax.numpy` / `lax` with static shapes. This module imports nothing from jaxal,
so any module (`jaxal.kmeans`, `jaxal.training`, the selections) can import it without a cycle.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

# Full float32 accuracy for x @ c.T on every backend (GPUs default to TF32, which moves near-ties).
HIGHEST = lax.Precision.HIGHEST


# ---------------------------------------------------------------------------------------------
# Chunked row map

def pad_rows(a: jax.Array, chunk: int) -> jax.Array:
  """`a` [N, ...] padded with zero (False) rows to a whole number of chunks,
  [ceil(N / chunk) * chunk, ...]; `a` itself when N is a multiple of `chunk`."""
  pad = -a.shape[0] % chunk
  return jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a


def chunked_map(fn: Callable[..., Any], arrays: tuple[jax.Array, ...], chunk: int, *,
                per_chunk: bool = False, with_index: bool = False) -> Any:
  """`fn(*row_chunks)` over consecutive row chunks of `arrays` (each [N, ...]) with `lax.map`, so
  peak memory is set by the chunk, not by N.

  The chunk is clamped to [1, N]; rows are padded with zeros (False) to a whole number of chunks
  (`pad_rows`; nothing is padded when N is already a multiple, e.g. arrays padded once outside a
  loop) and `fn` sees the padding rows of the last chunk, so it must mask them where they matter.

  Args:
    fn: maps one chunk of every array, [chunk, ...] each (plus the int32 chunk index with
      `with_index`), to a pytree of arrays.
    arrays: a tuple of arrays with the same leading size N.
    chunk: rows per chunk (static).
    per_chunk: return the outputs per chunk, [n_chunks, ...] (for per-chunk reductions), instead
      of per row.
    with_index: call `fn(*row_chunks, chunk_index)` (e.g. to fold the index into a key).
  Returns:
    fn's pytree with every leaf [N, ...] (rows of the chunks in order, the padding cut off), or
    [n_chunks, ...] with `per_chunk`.
  """
  n = arrays[0].shape[0]
  chunk = max(1, min(chunk, n))
  n_chunks = -(-n // chunk)
  chunked = tuple(pad_rows(a, chunk).reshape((n_chunks, chunk) + a.shape[1:]) for a in arrays)
  if with_index:
    chunked += (jnp.arange(n_chunks),)
  out = lax.map(lambda args: fn(*args), chunked)
  if per_chunk:
    return out
  return jax.tree.map(lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:])[:n], out)


# ---------------------------------------------------------------------------------------------
# Selection

def top_k(scores: jax.Array, candidates: jax.Array, k: int) -> jax.Array:
  """The k candidates with the highest `scores` [N] (ties: lower index first), int32 [k].
  Non-candidates are never taken as long as at least k candidates exist (the loop checks budgets
  before it starts)."""
  masked = jnp.where(candidates, scores.astype(jnp.float32), -jnp.inf)
  return jax.lax.top_k(masked, k)[1].astype(jnp.int32)


def random_select(key: jax.Array, candidates: jax.Array, k: int) -> jax.Array:
  """k of the `candidates` [N] uniformly at random without replacement (top-k of i.i.d. uniform
  keys), int32 [k]."""
  return top_k(jax.random.uniform(key, candidates.shape), candidates, k)


def argmax_free(scores: jax.Array, free: jax.Array, taken: jax.Array) -> jax.Array:
  """The masked argmax of greedy loops: the entry of `scores` [N] with the highest score among
  `free` [N] (ties: lowest index); when no entry is free, the first entry not `taken` [N] yet, so a
  greedy loop never returns an index twice. int32 scalar."""
  best = jnp.argmax(jnp.where(free, scores, -jnp.inf))
  return jnp.where(jnp.any(free), best, jnp.argmax(~taken)).astype(jnp.int32)


def sample_proportional(key: jax.Array, weights: jax.Array) -> jax.Array:
  """An index drawn with probability proportional to `weights` [N] (>= 0, positive sum) by inverse
  CDF with u = uniform(key): the first i with cdf_i >= (1 - u) * total; weight-0 entries are never
  drawn. int32 scalar."""
  cdf = jnp.cumsum(weights)
  r = cdf[-1] * (1.0 - jax.random.uniform(key, (), cdf.dtype))
  idx = jnp.searchsorted(cdf, r, side="left")
  return jnp.minimum(idx, weights.shape[0] - 1).astype(jnp.int32)


def complete(first: jax.Array, ok: jax.Array, fallback: jax.Array, candidates: jax.Array,
             k: int) -> jax.Array:
  """int32 [k]: the entries of `first` [k] where `ok` [k] (duplicates and non-candidates dropped),
  in order, then the `candidates` [N] with the highest `fallback` scores [N] not already taken."""
  n = candidates.shape[0]
  t = jnp.arange(first.shape[0])
  ok = ok & candidates[first]
  earlier = (first[None, :] == first[:, None]) & ok[None, :] & (t[None, :] < t[:, None])
  ok = ok & ~jnp.any(earlier, axis=1)
  taken = jnp.zeros(n, bool).at[jnp.where(ok, first, n)].set(True, mode="drop")
  extra = top_k(fallback, candidates & ~taken, k)
  both = jnp.concatenate([first.astype(jnp.int32), extra])
  keep = jnp.concatenate([ok, jnp.ones(k, bool)])
  order = jnp.argsort((~keep).astype(jnp.int32), stable=True)
  return both[order[:k]]


# ---------------------------------------------------------------------------------------------
# Features

def checked_inputs(features: Any, masks: tuple[tuple[str, Any], ...], where: str):
  """(float32 features [N, D], *bool masks [N]) from `features` and `(name, mask)` pairs, with
  errors that name `where` and the argument."""
  x = jnp.asarray(features)
  if x.ndim != 2:
    raise ValueError(f"{where}: features must be [N, D]; got shape {tuple(x.shape)}.")
  x = x.astype(jnp.float32)
  out = []
  for name, m in masks:
    m = jnp.asarray(m, bool)
    if m.shape != (x.shape[0],):
      raise ValueError(f"{where}: {name} must have shape [N] = ({x.shape[0]},); got "
                       f"{tuple(m.shape)}.")
    out.append(m)
  return (x, *out)


def l2_normalize(x: jax.Array) -> jax.Array:
  """Rows of `x` [N, D] scaled to unit Euclidean norm (norms below 1e-12 count as 1e-12)."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_to_centroids(x: jax.Array, valid: jax.Array, c: jax.Array,
                         chunk: int) -> tuple[jax.Array, jax.Array]:
  """For each centroid of `c` [k, D], the valid point of `x` [N, D] nearest to it (ties: lowest
  index): (int32 [k], bool [k] whether any valid point exists). Row chunks: memory O(chunk k)."""
  cc = jnp.sum(c * c, axis=-1)

  def block(xb, vb, chunk_index):
    d = jnp.sum(xb * xb, -1)[:, None] - 2.0 * jnp.dot(xb, c.T, precision=HIGHEST) + cc[None]
    d = jnp.where(vb[:, None], d, jnp.inf)
    j = jnp.argmin(d, axis=0)
    return jnp.min(d, axis=0), (chunk_index * xb.shape[0] + j).astype(jnp.int32)

  # Per chunk: the minimum [n_chunks, k] and the row holding it.
  best, idx = chunked_map(block, (x, valid), chunk, per_chunk=True, with_index=True)
  which = jnp.argmin(best, axis=0)  # [k] first chunk holding the minimum
  cols = jnp.arange(c.shape[0])
  return idx[which, cols], jnp.isfinite(best[which, cols])


__all__ = ["HIGHEST", "argmax_free", "checked_inputs", "chunked_map", "complete", "l2_normalize",
           "nearest_to_centroids", "pad_rows", "random_select", "sample_proportional", "top_k"]
