"""Selection strategies: pure functions from scores and masks to K pool indices.

A strategy selects with `(key, scores, candidates, k) -> indices`, scores float [N] (higher = more
informative), candidates bool [N] (unlabeled and selectable) and a static k; it returns int32 [k]
distinct indices of candidates. Everything is `lax`: no host round trip, static shapes.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from jaxal import scoring


def top_k(scores: jax.Array, candidates: jax.Array, k: int) -> jax.Array:
  """The k candidates with the highest scores (ties: lower index first). Non-candidates are never
  taken as long as at least k candidates exist (the loop checks budgets before it starts)."""
  masked = jnp.where(candidates, scores.astype(jnp.float32), -jnp.inf)
  return jax.lax.top_k(masked, k)[1].astype(jnp.int32)


def random_select(key: jax.Array, candidates: jax.Array, k: int) -> jax.Array:
  """k candidates uniformly at random without replacement (top-k of i.i.d. uniform keys)."""
  return top_k(jax.random.uniform(key, candidates.shape), candidates, k)


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A named selection rule. `score` maps predictive samples [S, N, C] to [N]; None when the rule
  needs no model predictions (random)."""
  name: str
  score: Callable[[jax.Array], jax.Array] | None

  def select(self, key: jax.Array, scores: jax.Array | None, candidates: jax.Array,
             k: int) -> jax.Array:
    if self.score is None:
      return random_select(key, candidates, k)
    return top_k(scores, candidates, k)


STRATEGIES: dict[str, Strategy] = {"random": Strategy("random", None)}
STRATEGIES.update({name: Strategy(name, fn) for name, fn in scoring.SAMPLE_SCORES.items()})


def get_strategy(name: str) -> Strategy:
  if name not in STRATEGIES:
    raise ValueError(f"--strategies: unknown strategy {name!r}; accepted: "
                     f"{', '.join(STRATEGIES)}.")
  return STRATEGIES[name]
