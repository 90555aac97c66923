"""Pools beyond device memory: the pool stays on the host as a `.npy` file (uint8 [N, H, W, C]) and
the round streams it to the device in blocks.

    step, final = host_round_fns(round_fn)        # the (step, final) pair `jaxal.run` takes
    pool = LabeledArrays(HostImages(path, mean, std), labels)
    records = jaxal.run(round_fn, pool, test, seeds, splits, fns=(step, final))

A round, per seed: the labeled items (at most the budget's capacity) and the validation set are
read from the file and trained on with the unchanged `Round.train_and_evaluate` (on a compact pool
whose labeled rows keep their pool order, so training draws exactly the batches it draws on the
whole pool); then the pool is scored block by block with the round's SCORE key folded with the
same chunk indices as `scoring.score_pool`, so every item gets the score it gets in memory. A top-K
strategy keeps a running top K (`streaming.stream_top_k`); other strategies that need only scores
(e.g. power sampling) get the N scores (4 bytes an item) and select as usual. Strategies that need
features, probabilities or samples of the whole pool are refused (`unsupported`).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import annotation, progress, scoring, streaming
from jaxal.data.transforms import normalize
from jaxal.round import Round
from jaxal.state import SCORE, SELECT, LabeledArrays, round_key
from jaxal.strategies import ClusterAnnotation, SelectionInputs, Strategy, _top_k

STREAMABLE_NEEDS = frozenset({"scores", "labeled"})


class HostImages:
  """Normalised float32 rows of a uint8 `.npy` image file, read on demand with plain file reads
  (nothing of the pool stays in memory or mapped): `images[a:b]` a block, `images[idx]` rows by
  index. `shape`, `dtype` (float32) and `ndim` describe the normalised pool."""

  def __init__(self, path: str, mean: np.ndarray, std: np.ndarray):
    self.file = streaming.NpyFile(path)
    if self.file.dtype != np.uint8 or len(self.file.shape) != 4:
      raise ValueError(f"HostImages: {path!r} holds {self.file.dtype} {self.file.shape}; expected "
                       "uint8 images [N, H, W, C].")
    self.path, self.mean, self.std = path, np.asarray(mean), np.asarray(std)
    self.shape, self.dtype, self.ndim = self.file.shape, np.dtype(np.float32), 4

  def __len__(self) -> int:
    return self.shape[0]

  def raw(self, key) -> np.ndarray:
    """uint8 rows: a contiguous slice, or an int array of row indices."""
    if isinstance(key, slice):
      return self.file[key]
    idx = np.asarray(key, np.int64).reshape(-1)
    out = np.empty((idx.size,) + self.shape[1:], np.uint8)
    with open(self.path, "rb") as f:
      for j, i in enumerate(idx):
        f.seek(self.file.offset + int(i) * self.file.row_bytes)
        out[j] = np.fromfile(f, np.uint8, self.file.row_bytes).reshape(self.shape[1:])
    return out

  def __getitem__(self, key) -> np.ndarray:
    return normalize(self.raw(key), self.mean, self.std)


def channel_stats(images: streaming.NpyFile, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
  """`jaxal.data.channel_stats` of a uint8 `.npy` read block by block (the same exact integer sums,
  so the same float32 mean and std)."""
  c = images.shape[-1]
  total, total_sq = np.zeros(c, np.int64), np.zeros(c, np.int64)
  for start in range(0, len(images), block):
    rows = images[start:start + block].reshape(-1, c).astype(np.int64)
    total += rows.sum(axis=0)
    total_sq += (rows * rows).sum(axis=0)
  n = len(images) * int(np.prod(images.shape[1:-1]))
  mean, std = np.empty(c, np.float64), np.empty(c, np.float64)
  for i in range(c):
    s, ss = int(total[i]), int(total_sq[i])
    mean[i] = s / (n * 255)
    std[i] = np.sqrt((ss * n - s * s) / (n * n)) / 255
  return mean.astype(np.float32), std.astype(np.float32)


def unsupported(round_fn: Round) -> str | None:
  """Why `round_fn` cannot stream its pool (None when it can), in the library's parameter names."""
  s = round_fn.strategy
  if isinstance(s, ClusterAnnotation):
    return f"strategy {s.name!r} clusters the whole pool's features"
  extra = sorted(set(s.needs) - STREAMABLE_NEEDS)
  if extra:
    return f"strategy {s.name!r} needs {', '.join(extra)} of the whole pool"
  if s.working_set:
    return f"strategy {s.name!r} works on a random working set of the pool"
  if round_fn.pool_subset:
    return "{pool_subset} > 0 draws a random working set of the pool"
  if round_fn.stop_set:
    return "{stop_set} > 0 predicts a random sample of the pool"
  return None


def streamable(strategy: Strategy | ClusterAnnotation) -> bool:
  return (not isinstance(strategy, ClusterAnnotation) and not strategy.working_set
          and set(strategy.needs) <= STREAMABLE_NEEDS)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def host_round_fns(round_fn: Round, block: int = 65536, progress_hooks: bool = False):
  """(step, final) with `jaxal.driver.make_round_fns`'s signature, `fn(states, pool, test) ->
  (states, metrics)`, for a pool whose `x` is `HostImages` (or any host array of normalised images)
  and `y` a host int array. `block` rows are streamed at a time (rounded to a multiple of the
  scoring chunk). Every compiled piece has the same shapes every round."""
  if progress_hooks and not round_fn.progress_hooks:
    round_fn = dataclasses.replace(round_fn, progress_hooks=True)
  strategy, k = round_fn.strategy, round_fn.budget.query_size
  unc, eval_chunk = round_fn.uncertainty, round_fn.train_config.eval_batch_size
  train_eval = jax.jit(round_fn.train_and_evaluate)

  @jax.jit
  def score_block(variables, key, xb, first_chunk):
    chunk = min(eval_chunk, n_items[0])
    def one(xc, i):
      kk = jax.random.fold_in(key, first_chunk + i)
      return strategy.score(scoring.predict_samples(round_fn.model, variables, xc, kk, unc.method,
                                                    unc.mc_samples, unc.shared_trunk))
    from jaxal.training import apply_in_chunks  # pylint: disable=import-outside-toplevel
    return apply_in_chunks(one, xb, chunk, with_index=True)

  @jax.jit
  def select(state, scores, selectable):
    inputs = SelectionInputs(labeled=state.labeled, scores=scores,
                             context=round_fn.context(state.labeled.shape[0]))
    return strategy.select(round_key(state.key, state.round, SELECT), inputs, k, selectable)

  tell = jax.jit(annotation.tell)
  n_items = [0]

  def compact(state, pool):
    """(state, pool) over the labeled buffer [capacity] and the validation set only."""
    n = pool.y.shape[0]
    labeled = np.asarray(state.labeled)
    idx = np.flatnonzero(labeled)
    cap = round_fn.capacity(n)
    buf = np.zeros(cap, np.int64)
    buf[:idx.size] = idx
    val = np.asarray(state.val, np.int64)
    known = np.asarray(state.labels)
    x = np.concatenate([pool.x[buf], pool.x[val]])
    y = np.concatenate([known[buf], np.asarray(pool.y)[val]]).astype(np.int32)
    mask = np.concatenate([np.arange(cap) < idx.size, np.zeros(val.size, bool)])
    small = state.replace(labeled=jnp.asarray(mask), labels=jnp.asarray(y),
                          selectable=jnp.zeros(mask.shape, bool),
                          val=jnp.asarray(cap + np.arange(val.size), jnp.int32))
    return small, LabeledArrays(jnp.asarray(x), jnp.asarray(y))

  def scores_of(state, pool):
    n = n_items[0] = pool.y.shape[0]
    chunk = min(eval_chunk, n)
    rows = chunk * max(1, min(block, n) // chunk)
    key = round_key(state.key, state.round, SCORE)
    return rows, lambda xb, i: score_block(state.variables, key, xb, i * (rows // chunk))

  def one_seed(state, pool, test, final):
    small, small_pool = compact(state, pool)
    trained, metrics = train_eval(small, small_pool, test)
    state = state.replace(variables=trained.variables, opt_state=trained.opt_state)
    if final:
      return state, metrics
    if round_fn.progress_hooks:   # the streamed scoring runs here, on the host's side
      jax.effects_barrier()
      progress.phase_callback("select", metrics.get("test_accuracy", metrics["val_accuracy"]))
    candidates = np.asarray(state.selectable) & ~np.asarray(state.labeled)
    if strategy.select is _top_k:
      rows, fn = scores_of(state, pool)
      picked, _ = streaming.stream_top_k(fn, pool.x, k, chunk=rows, candidates=candidates)
    else:
      scores = None
      if "scores" in strategy.needs:
        rows, fn = scores_of(state, pool)
        scores = jnp.asarray(streaming.stream_scores(fn, pool.x, chunk=rows))
      picked = np.asarray(select(state, scores, jnp.asarray(candidates)))
    picked = jnp.asarray(picked, jnp.int32)
    labels = jnp.asarray(np.asarray(pool.y)[np.asarray(picked)], jnp.int32)
    return tell(state, picked, labels), {**metrics, "selected": picked}

  def over(final):
    def call(states, pool, test):
      seeds = jax.tree.leaves(states)[0].shape[0]
      outs = [one_seed(jax.tree.map(lambda a, s=s: a[s], states), pool, test, final)
              for s in range(seeds)]
      return _stack([o[0] for o in outs]), _stack([o[1] for o in outs])
    return call

  return over(False), over(True)

