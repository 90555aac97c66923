"""Selection strategies: pure functions from scores and masks to K pool indices.

A strategy selects with `(key, scores, candidates, k) -> indices`, scores float [N] (higher = more
informative), candidates bool [N] (unlabeled and selectable) and a static k; it returns int32 [k]
distinct indices of candidates. Everything is `lax`: no host round trip, static shapes.

"pool" strategies (BatchBALD, power sampling, core-set, BADGE, TypiClust, ProbCover, Cluster-Margin,
k-means, margin-cluster-mean) need more than one score per item: `jaxal.loop.ask` computes what
their `needs` lists (`PoolInputs`) and calls their `selector`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

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


KINDS = ("random", "top_k", "hybrid", "hybrid_balanced", "cluster", "pool")


class PoolInputs(NamedTuple):
  """What `jaxal.loop.ask` computes over the round's working set (the pool, or a random subset of
  its candidates plus the labeled items) for a "pool" strategy; fields the strategy does not list in
  `Strategy.needs` are None.

  candidates: bool [n] selectable unlabeled items; labeled: bool [n] labeled items ("labeled":
  included in a subset working set); scores: float [n] the strategy's `score` of the predictive
  samples ("scores"); samples: float [S, n, C] predictive samples ("samples"); probs: float [n, C]
  and features: float [n, D], the deterministic network's (member 0's) class probabilities and
  penultimate features ("probs", "features")."""
  candidates: jax.Array
  labeled: jax.Array
  scores: jax.Array | None = None
  samples: jax.Array | None = None
  probs: jax.Array | None = None
  features: jax.Array | None = None


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
    selector: for "pool": `selector(key, inputs: PoolInputs, k, cfg: RoundConfig) -> int32 [k]`,
      a pure function of what `needs` lists ("scores", "samples", "probs", "features", "labeled").
    graph: for "pool": works on at most `cfg.graph_subset` items (quadratic cost).
  """
  name: str
  score: Callable[[jax.Array], jax.Array] | None
  kind: str = "top_k"
  images: str = "score"
  clusters_first: bool = False
  selector: Callable[..., jax.Array] | None = None
  needs: tuple[str, ...] = ()
  graph: bool = False

  @property
  def needs_features(self) -> bool:
    return self.kind in ("hybrid", "hybrid_balanced", "cluster")

  @property
  def needs_several_samples(self) -> bool:
    """Whether the rule is degenerate with one deterministic sample (BALD-like)."""
    return "samples" in self.needs or any(self.score is scoring.SAMPLE_SCORES[n]
                                          for n in scoring.NEEDS_SAMPLES)

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


# ---------------------------------------------------------------------------------------------
# Batch-aware and diversity baselines (issue #9): adapters from `PoolInputs` and the round's
# configuration to the pure selections of `jaxal.batch_strategies` and `jaxal.diversity`, whose
# docstrings cite the papers. (Imported inside the functions: those modules import `top_k` here.)

def _batchbald(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import batch_strategies  # pylint: disable=import-outside-toplevel
  return batch_strategies.batchbald_select(key, d.samples, d.candidates, k, cfg.batchbald_configs)


def _power(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import batch_strategies  # pylint: disable=import-outside-toplevel
  return batch_strategies.power_select(key, d.scores, d.candidates, k, cfg.power_beta)


def _coreset(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  del key
  return diversity.coreset_select(d.features, d.candidates, d.labeled, k,
                                  max_labeled=cfg.capacity, chunk=cfg.train.eval_batch_size)


def _badge(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  del cfg
  return diversity.badge_select(key, d.probs, d.features, d.candidates, k)


def _typiclust(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  return diversity.typiclust_select(key, d.features, d.candidates, d.labeled, k,
                                    max_clusters=min(cfg.typiclust_max_clusters, cfg.capacity),
                                    n_neighbors=cfg.typiclust_neighbors,
                                    chunk=cfg.train.eval_batch_size)


def _probcover(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  return diversity.probcover_select(key, d.features, d.candidates, d.labeled, k,
                                    delta=cfg.probcover_delta, purity=cfg.probcover_purity,
                                    num_classes=cfg.num_classes, chunk=cfg.train.eval_batch_size)


def _cluster_margin(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  if not cfg.cluster_margin_factor >= 1:
    raise ValueError(f"--cluster_margin_factor must be >= 1 (k_m = factor * K candidates); got "
                     f"{cfg.cluster_margin_factor}.")
  return diversity.cluster_margin_select(
      key, d.scores, d.features, d.candidates, k,
      num_candidates=math.ceil(cfg.cluster_margin_factor * k - 1e-9),
      threshold=cfg.cluster_margin_threshold)


def _kmeans(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  return diversity.kmeans_select(key, d.features, d.candidates, k, chunk=cfg.train.eval_batch_size)


def _margin_cluster_mean(key: jax.Array, d: PoolInputs, k: int, cfg: Any) -> jax.Array:
  from jaxal import diversity  # pylint: disable=import-outside-toplevel
  return diversity.margin_cluster_mean_select(key, 1.0 - d.scores, d.features, d.candidates,
                                              d.labeled, k, chunk=cfg.train.eval_batch_size)


def _pool(name: str, selector: Callable[..., jax.Array], needs: tuple[str, ...],
          score: Callable[[jax.Array], jax.Array] | None = None, graph: bool = False) -> Strategy:
  return Strategy(name, score, kind="pool", selector=selector, needs=needs, graph=graph)


STRATEGIES.update({s.name: s for s in (
    _pool("batchbald", _batchbald, ("samples",)),
    _pool("power_bald", _power, ("scores",), scoring.SAMPLE_SCORES["bald"]),
    _pool("power_entropy", _power, ("scores",), scoring.SAMPLE_SCORES["entropy"]),
    _pool("coreset", _coreset, ("features", "labeled")),
    _pool("badge", _badge, ("probs", "features")),
    _pool("typiclust", _typiclust, ("features", "labeled"), graph=True),
    _pool("probcover", _probcover, ("features", "labeled"), graph=True),
    _pool("cluster_margin", _cluster_margin, ("scores", "features"),
          scoring.SAMPLE_SCORES["margin"]),
    _pool("kmeans", _kmeans, ("features",)),
    _pool("margin_cluster_mean", _margin_cluster_mean, ("scores", "features", "labeled"),
          scoring.SAMPLE_SCORES["margin"]),
)})


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
