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


KINDS = ("random", "top_k", "hybrid", "hybrid_balanced", "cluster")


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A named selection rule.

  Attributes:
    name: the registry / command-line name.
    score: maps predictive samples [S, N, C] to [N]; None when the rule needs no predictions.
    kind: "random" | "top_k" (top-K of `score`) | "hybrid" | "hybrid_balanced" (see
      `jaxal.clustering.hybrid_select`) | "cluster" (cluster-based annotation).
    images: for "cluster": how the round's K single images are chosen ("none", "random" or
      "score"), and `clusters_first` whether whole clusters are shown before them.
  """
  name: str
  score: Callable[[jax.Array], jax.Array] | None
  kind: str = "top_k"
  images: str = "score"
  clusters_first: bool = False

  @property
  def needs_features(self) -> bool:
    return self.kind in ("hybrid", "hybrid_balanced", "cluster")

  def select(self, key: jax.Array, scores: jax.Array | None, candidates: jax.Array,
             k: int) -> jax.Array:
    """Top-K or random selection (the kinds that need no features)."""
    if self.score is None:
      return random_select(key, candidates, k)
    return top_k(scores, candidates, k)


STRATEGIES: dict[str, Strategy] = {"random": Strategy("random", None, kind="random")}
STRATEGIES.update({name: Strategy(name, fn) for name, fn in scoring.SAMPLE_SCORES.items()})
STRATEGIES["hybrid"] = Strategy("hybrid", scoring.SAMPLE_SCORES["entropy"], kind="hybrid")
STRATEGIES["hybrid_balanced"] = Strategy("hybrid_balanced", scoring.SAMPLE_SCORES["entropy"],
                                         kind="hybrid_balanced")
STRATEGIES["cluster"] = Strategy("cluster", None, kind="cluster", images="none")
STRATEGIES["entropy+cluster"] = Strategy("entropy+cluster", scoring.SAMPLE_SCORES["entropy"],
                                         kind="cluster")
STRATEGIES["cluster+entropy"] = Strategy("cluster+entropy", scoring.SAMPLE_SCORES["entropy"],
                                         kind="cluster", clusters_first=True)


def get_strategy(name: str, hybrid_score: str = "entropy") -> Strategy:
  """The strategy called `name`. Besides the registry, `<score>+cluster`, `cluster+<score>` and
  `random+cluster` / `cluster+random` combine any score with cluster annotation; `hybrid` and
  `hybrid_balanced` rank by `hybrid_score`."""
  if name in ("hybrid", "hybrid_balanced"):
    return Strategy(name, scoring.get_score(hybrid_score), kind=name)
  if name in STRATEGIES:
    return STRATEGIES[name]
  parts = name.split("+")
  if len(parts) == 2 and "cluster" in parts and parts[0] != parts[1]:
    other = parts[1] if parts[0] == "cluster" else parts[0]
    if other == "random":
      return Strategy(name, None, kind="cluster", images="random",
                      clusters_first=parts[0] == "cluster")
    if other in scoring.SAMPLE_SCORES:
      return Strategy(name, scoring.SAMPLE_SCORES[other], kind="cluster",
                      clusters_first=parts[0] == "cluster")
  raise ValueError(f"--strategies: unknown strategy {name!r}; accepted: "
                   f"{', '.join(STRATEGIES)} (and <score>+cluster, cluster+<score> for any score).")
