"""Pools kept on the host (e.g. a memory-mapped `.npy`) and fed to the device chunk by chunk.

Peak memory is set by the chunk size, not by the pool: the device holds one chunk of inputs (two
while the next is being copied) and the running top k; the host reads the pool lazily from disk,
either through `np.load(path, mmap_mode="r")` (pages read stay in the process's resident set as
file-backed memory the kernel may drop) or through `NpyFile`, which reads each block with plain
file reads, so nothing of the pool stays mapped.

    x = np.load("pool.npy", mmap_mode="r")                       # [N, ...] never read whole
    score = jax.jit(lambda xb, i: scoring.bald(scoring.predict_samples(
        model, variables, xb, jax.random.fold_in(key, i), "mc_dropout", 20)))
    idx, top = stream_top_k(score, x, k=10, chunk=8192, candidates=unlabeled)

Chunk i's scores are `score_chunk(x[i*chunk:(i+1)*chunk], i)`; the last chunk is zero-padded to the
full size (so one compiled program serves every chunk) and its padding is ignored.
"""
from __future__ import annotations

from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np


class NpyFile:
  """A read-only view of a 2-D or higher `.npy` file that reads the rows asked for with plain file
  reads: `NpyFile(path)[a:b]` returns a fresh array of rows a..b-1. Only contiguous row slices
  (step 1) are supported; `shape`, `dtype` and `len()` are those of the stored array."""

  def __init__(self, path: str):
    with open(path, "rb") as f:
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, fortran, dtype = read_header(f)
      self.offset = f.tell()
    if fortran:
      raise ValueError(f"NpyFile: {path!r} is stored in Fortran order; save it C-ordered.")
    if dtype.hasobject:
      raise ValueError(f"NpyFile: {path!r} holds Python objects; expected a numeric array.")
    self.path, self.shape, self.dtype = path, tuple(shape), dtype
    self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, key) -> np.ndarray:
    if not isinstance(key, slice) or key.step not in (None, 1):
      raise TypeError("NpyFile supports contiguous row slices only, e.g. f[a:b].")
    start, stop, _ = key.indices(self.shape[0])
    n = max(0, stop - start)
    with open(self.path, "rb") as f:
      f.seek(self.offset + start * self.row_bytes)
      data = np.fromfile(f, dtype=self.dtype, count=n * self.row_bytes // self.dtype.itemsize)
    return data.reshape((n,) + self.shape[1:])


def _chunks(x: np.ndarray, chunk: int) -> Iterator[tuple[int, np.ndarray, int]]:
  """(chunk index, host block padded to `chunk` rows, valid rows) for each chunk of `x`."""
  n = x.shape[0]
  for i, start in enumerate(range(0, n, chunk)):
    block = np.asarray(x[start:start + chunk])
    valid = block.shape[0]
    if valid < chunk:
      block = np.concatenate([block, np.zeros((chunk - valid,) + block.shape[1:], block.dtype)])
    yield i, block, valid


def _check(x, chunk: int, where: str) -> None:
  if chunk < 1:
    raise ValueError(f"{where}: chunk={chunk} must be at least 1.")
  if x.shape[0] == 0:
    raise ValueError(f"{where}: the pool is empty.")


def stream_scores(score_chunk: Callable[[jax.Array, int], jax.Array], x: np.ndarray,
                  chunk: int = 8192) -> np.ndarray:
  """Scores of every row of the host array `x` [N, ...]: float32 [N] on the host. The next chunk is
  copied to the device while the current one is scored (JAX dispatch is asynchronous)."""
  _check(x, chunk, "stream_scores")
  out = np.empty(x.shape[0], np.float32)
  pending = None
  for i, block, valid in _chunks(x, chunk):
    scores = score_chunk(jax.device_put(block), i)
    if pending is not None:
      j, prev, prev_valid = pending
      out[j * chunk:j * chunk + prev_valid] = np.asarray(prev)[:prev_valid]
    pending = (i, scores, valid)
  j, prev, prev_valid = pending
  out[j * chunk:j * chunk + prev_valid] = np.asarray(prev)[:prev_valid]
  return out


@jax.jit
def _merge(best_v, best_i, scores, keep, start):
  """Top len(best_v) of the running best and a new chunk's scores (rows where `keep` is False count
  as -inf); ties keep the lower pool index (the running best always holds lower indices than the
  chunk, and comes first). One dispatch per chunk."""
  k = best_v.shape[0]
  scores = jnp.where(keep, scores.astype(jnp.float32), -jnp.inf)
  vals = jnp.concatenate([best_v, scores])
  idx = jnp.concatenate([best_i, start + jnp.arange(scores.shape[0], dtype=jnp.int32)])
  top_v, pos = jax.lax.top_k(vals, k)
  return top_v, idx[pos]


def stream_top_k(score_chunk: Callable[[jax.Array, int], jax.Array], x: np.ndarray, k: int,
                 chunk: int = 8192, candidates: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """The k rows of the host array `x` with the highest scores among `candidates` (bool [N]; all rows
  when None), without keeping the N scores: a running top k is merged with each chunk's scores on
  the device. Ties go to the lower index, exactly as `jaxal.selection.primitives.top_k` on the whole pool.
  Returns (int64 indices [k], float32 scores [k]), best first."""
  _check(x, chunk, "stream_top_k")
  n = x.shape[0]
  if candidates is not None and candidates.shape != (n,):
    raise ValueError(f"stream_top_k: candidates has shape {candidates.shape}; expected ({n},).")
  n_cand = n if candidates is None else int(np.sum(candidates))
  if not 1 <= k <= n_cand:
    raise ValueError(f"stream_top_k: k={k} must be between 1 and the {n_cand} candidates.")
  best_v = jnp.full((k,), -jnp.inf, jnp.float32)
  best_i = jnp.full((k,), n, jnp.int32)      # sentinel indices after every real row
  for i, block, valid in _chunks(x, chunk):
    # At most one chunk in flight: wait for the previous merge before putting the next chunk on
    # the device (reading it from the host above already overlapped with that chunk's scoring).
    best_v.block_until_ready()
    scores = score_chunk(jax.device_put(block), i)
    keep = np.arange(chunk) < valid
    if candidates is not None:
      keep[:valid] &= np.asarray(candidates[i * chunk:i * chunk + valid], bool)
    best_v, best_i = _merge(best_v, best_i, scores, keep, np.int32(i * chunk))
  return np.asarray(best_i).astype(np.int64), np.asarray(best_v)
