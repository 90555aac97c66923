"""From the trained network to the K items to label: predictive samples -> scores -> the inputs a
strategy declares it needs (`Strategy.needs`) -> its selection.

`ask` is the acquisition step of a round. It builds the strategy's working set (the whole pool, or
with `pool_subset` / `Strategy.working_set` that many random unlabeled items, followed by the
labeled ones when the strategy needs them), computes only what the strategy lists, and maps the
selection back to pool indices. Predictive samples come from `jaxal.scoring.score_pool` in chunks,
so the [S, N, C] array is built only for strategies that ask for "samples".
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxal import scoring, training
from jaxal.selection.primitives import random_select
from jaxal.state import ALState, LabeledArrays, SCORE, SELECT, SUBSET, Uncertainty, round_key
from jaxal.strategies import Context, SelectionInputs, Strategy


def member0(variables: Any, uncertainty: Uncertainty) -> Any:
  """The variables of the deterministic network: member 0 of an ensemble, else all of them."""
  return jax.tree.map(lambda a: a[0], variables) if uncertainty.members else variables


def pool_outputs(model: nn.Module, variables: Any, x: jax.Array, uncertainty: Uncertainty,
                 chunk: int) -> tuple[jax.Array, jax.Array]:
  """Class probabilities [n, C] and penultimate features [n, D] of the deterministic network
  (member 0 of an ensemble), from one chunked pass."""
  logits, features = training.predict(model, member0(variables, uncertainty), x, chunk)
  return jax.nn.softmax(logits, axis=-1), features


def pool_features(model: nn.Module, variables: Any, x: jax.Array, uncertainty: Uncertainty,
                  chunk: int) -> jax.Array:
  """Penultimate-layer features [n, D] of the deterministic network."""
  return training.predict(model, member0(variables, uncertainty), x, chunk)[1]


def pool_scores(state: ALState, model: nn.Module, x: jax.Array, score, uncertainty: Uncertainty,
                chunk: int) -> jax.Array:
  """`score` of the predictive samples of every item of `x` [n]: float [n]. The dropout masks come
  from the round's SCORE stream, so scores and samples of one round are the same draws."""
  return scoring.score_pool(model, state.variables, x,
                            key=round_key(state.key, state.round, SCORE),
                            method=uncertainty.method, score=score,
                            num_samples=uncertainty.mc_samples, chunk=chunk,
                            shared_trunk=uncertainty.shared_trunk)


def pool_samples(state: ALState, model: nn.Module, x: jax.Array, uncertainty: Uncertainty,
                 chunk: int) -> jax.Array:
  """Predictive samples [S, n, C] of `x`, in chunks (the draws `pool_scores` scores)."""
  rows = pool_scores(state, model, x, lambda s: jnp.swapaxes(s, 0, 1), uncertainty, chunk)
  return jnp.swapaxes(rows, 0, 1)


def working_set(state: ALState, candidates: jax.Array, size: int, with_labeled: bool,
                capacity: int):
  """The items a strategy sees: the whole pool when `size` is 0 or not smaller than the pool,
  else `size` random candidates followed, with `with_labeled`, by the labeled items gathered into
  a buffer of min(capacity, N) slots. Returns (pool indices int32 [n] or None for the whole pool,
  selectable bool [n], labeled bool [n])."""
  n = candidates.shape[0]
  if not size or size >= n:
    return None, candidates, state.labeled
  subset = random_select(round_key(state.key, state.round, SUBSET), candidates, size)
  if not with_labeled:
    return subset, candidates[subset], jnp.zeros(size, bool)
  cap = min(capacity, n)
  labeled = jnp.nonzero(state.labeled, size=cap, fill_value=0)[0].astype(subset.dtype)
  labeled_ok = jnp.arange(cap) < jnp.sum(state.labeled)
  return (jnp.concatenate([subset, labeled]),
          jnp.concatenate([candidates[subset], jnp.zeros(cap, bool)]),
          jnp.concatenate([jnp.zeros(size, bool), labeled_ok]))


def selection_inputs(state: ALState, model: nn.Module, x: jax.Array, labeled: jax.Array,
                     strategy: Strategy, uncertainty: Uncertainty,
                     context: Context) -> SelectionInputs:
  """What `strategy.needs`, computed over the working set's images `x` [n, ...]."""
  probs = features = None
  if {"probs", "features"} & set(strategy.needs):
    probs, features = pool_outputs(model, state.variables, x, uncertainty, context.chunk)
  scores = samples = None
  if "scores" in strategy.needs:
    scores = pool_scores(state, model, x, strategy.score, uncertainty, context.chunk)
  if "samples" in strategy.needs:
    samples = pool_samples(state, model, x, uncertainty, context.chunk)
  return SelectionInputs(labeled=labeled, scores=scores, samples=samples, probs=probs,
                         features=features, context=context)


def ask(state: ALState, pool: LabeledArrays, *, model: nn.Module, strategy: Strategy, k: int,
        uncertainty: Uncertainty, context: Context, pool_subset: int = 0) -> jax.Array:
  """The K pool indices `strategy` wants labeled next: int32 [K], distinct, unlabeled.

  With `pool_subset` > 0 a strategy that uses the network works on that many random unlabeled
  items (Gal et al.'s 2,000), and at most on its own `working_set`."""
  candidates = state.selectable & ~state.labeled
  size = pool_subset if strategy.needs_model else 0
  if strategy.working_set:
    size = min(size, strategy.working_set) if size else strategy.working_set
  index, selectable, labeled = working_set(state, candidates, size, "labeled" in strategy.needs,
                                           context.capacity)
  x = pool.x if index is None else pool.x[index]
  inputs = selection_inputs(state, model, x, labeled, strategy, uncertainty, context)
  picked = strategy.select(round_key(state.key, state.round, SELECT), inputs, k, selectable)
  return picked if index is None else index[picked]
