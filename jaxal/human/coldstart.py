"""The first question of a run with no labels yet (cold start): no network can be trained, so the
images are chosen from the pool's inputs alone (the raw pixels, or the embeddings when the pool is
made of them), reduced to `DIMENSIONS` principal components.

  "random"     K random selectable items;
  "kmeans"     the item nearest each of K k-means centres (`jaxal.strategies.kmeans`);
  "typiclust"  the most typical item of the K largest uncovered clusters (`jaxal.strategies.
               typiclust`, Hacohen et al. 2022, the low-budget cold-start strategy).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import strategies
from jaxal.annotation import Query
from jaxal.errors import ArgumentError
from jaxal.selection.primitives import random_select
from jaxal.strategies import Context, SelectionInputs

COLD_STARTS = ("typiclust", "kmeans", "random")
DIMENSIONS = 50
MAX_ITEMS = 5000   # typiclust / kmeans work on at most this many random selectable items


def check(method: str) -> None:
  if method not in COLD_STARTS:
    raise ArgumentError(f"{{cold_start}}: unknown value {method!r}; accepted: "
                        f"{', '.join(COLD_STARTS)}.")


def pca_features(x: np.ndarray, dimensions: int = DIMENSIONS, fit_items: int = 2000,
                 seed: int = 0) -> np.ndarray:
  """float32 [N, min(dimensions, D)]: the flattened inputs centred and projected on the leading
  principal components of a random sample of `fit_items` items (exact SVD of that sample)."""
  flat = np.asarray(x, np.float32).reshape(len(x), -1)
  rng = np.random.default_rng(seed)
  fit = flat[rng.choice(len(flat), min(fit_items, len(flat)), replace=False)]
  mean = fit.mean(0)
  _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
  return ((flat - mean) @ vt[:dimensions].T).astype(np.float32)


def cold_start_query(key: jax.Array, features: np.ndarray, selectable: np.ndarray, k: int,
                     method: str, num_classes: int, members: int) -> Query:
  """A `Query` of k images chosen by `method` over `features` [N, D] among `selectable` [N];
  no clusters (`members`: the montage width of the round's queries, for equal shapes)."""
  check(method)
  selectable = np.asarray(selectable, bool)
  none = jnp.zeros((0,), jnp.int32)
  wrap = lambda idx: Query(indices=jnp.asarray(idx, jnp.int32), clusters=none, sizes=none,
                           members=jnp.zeros((0, members), jnp.int32), proposed=none,
                           assignment=none)
  if method == "random":
    return wrap(random_select(key, jnp.asarray(selectable), k))
  subset_key, select_key = jax.random.split(key)
  work = np.flatnonzero(selectable)
  if work.size > MAX_ITEMS:
    work = np.sort(np.asarray(jax.random.choice(subset_key, jnp.asarray(work), (MAX_ITEMS,),
                                                replace=False)))
  strategy = strategies.typiclust() if method == "typiclust" else strategies.kmeans()
  inputs = SelectionInputs(labeled=jnp.zeros(work.size, bool),
                           features=jnp.asarray(features[work]),
                           context=Context(capacity=k, num_classes=num_classes, chunk=1024))
  local = np.asarray(jax.jit(strategy.select, static_argnums=2)(
      select_key, inputs, min(k, work.size), jnp.ones(work.size, bool)))
  idx = np.full(k, -1, np.int32)
  idx[:local.size] = work[local]
  return wrap(idx)
