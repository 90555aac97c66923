"""Strategies as values: small immutable objects built by factories with their own settings.

    strategy = jaxal.strategies.typiclust(max_clusters=500, neighbors=20)
    round_fn = jaxal.make_round(model, tx, strategy, budget=jaxal.Budget(20, 10, 5))

A `Strategy` declares what it `needs` from the round (`acquisition.NEEDS`: "scores" of its `score`
over predictive samples, the "samples" themselves, the deterministic network's "probs" and
"features", and "labeled" when the labeled items must be in its working set) and selects with the
pure function `select(key, inputs, k, selectable) -> int32 [k]`: `inputs` is a
`SelectionInputs` holding what it asked for over its working set, `selectable` the bool [n] mask of
unlabeled items it may take, k static. Nothing global is read inside the trace; a user's own
strategy is a `Strategy(name, select, needs=..., score=...)` and needs no registration.

`cluster_annotation(...)` is not a K-selection but a different kind of question (whole clusters
for an expert); it may hold an image strategy (`images=entropy()`), which is how the papers'
`entropy+cluster` and `cluster+entropy` compose. The name -> factory table for the command line and
presets is `jaxal.registry`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
from flax import struct

from jaxal import scoring
from jaxal.errors import ArgumentError, check_int
from jaxal.selection import badge as badge_lib
from jaxal.selection import batchbald as batchbald_lib
from jaxal.selection import cluster_margin as cluster_margin_lib
from jaxal.selection import coreset as coreset_lib
from jaxal.selection import hybrid as hybrid_lib
from jaxal.selection import kmeans_select as kmeans_lib
from jaxal.selection import margin_cluster_mean as mcm_lib
from jaxal.selection import power as power_lib
from jaxal.selection import probcover as probcover_lib
from jaxal.selection import typiclust as typiclust_lib
from jaxal.selection.primitives import random_select, top_k

NEEDS = ("scores", "samples", "probs", "features", "labeled")

ScoreFn = Callable[[jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Context:
  """Static facts of the round a selection may use: the labeled-set `capacity` (a static bound on
  how many items are labeled), `num_classes` and the `chunk` size for chunked pool computations."""
  capacity: int
  num_classes: int
  chunk: int


@struct.dataclass
class SelectionInputs:
  """What the round computed for a strategy over its working set of n items (the pool, or a random
  subset of its unlabeled items plus, if needed, the labeled ones). Fields the strategy does not
  list in `needs` are None.

  labeled: bool [n] labeled items of the working set; scores: float [n] the strategy's `score` of
  the predictive samples; samples: float [S, n, C]; probs: float [n, C] and features: float [n, D]
  of the deterministic network (member 0 of an ensemble); context: static `Context`."""
  labeled: jax.Array
  scores: jax.Array | None = None
  samples: jax.Array | None = None
  probs: jax.Array | None = None
  features: jax.Array | None = None
  context: Context = struct.field(pytree_node=False, default=None)


SelectFn = Callable[[jax.Array, SelectionInputs, int, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A rule that picks K pool items.

  Attributes:
    name: shown in results and progress lines.
    select: `select(key, inputs, k, selectable) -> int32 [k]` distinct indices of the working set,
      pure and jittable (see the module docstring).
    needs: names from `NEEDS`.
    score: samples [S, n, C] -> [n] (higher = more informative), computed when "scores" is needed.
    working_set: at most this many random unlabeled items (plus the labeled ones when needed) are
      given to `select` (quadratic-cost strategies); 0 = as the round decides (`pool_subset`).
    several_samples: the rule is degenerate with one deterministic predictive sample (BALD-like):
      a round with `Uncertainty(method="deterministic")` refuses it.
  """
  name: str
  select: SelectFn
  needs: tuple[str, ...] = ()
  score: ScoreFn | None = None
  working_set: int = 0
  several_samples: bool = False

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name:
      raise ArgumentError(f"{{strategy.name}} must be a non-empty string, got {self.name!r}.")
    if not callable(self.select):
      raise ArgumentError(f"{{strategy.select}} must be a function (key, inputs, k, selectable) "
                          f"-> indices, got {self.select!r}.")
    unknown = [n for n in self.needs if n not in NEEDS]
    if unknown:
      raise ArgumentError(f"{{strategy.needs}}: unknown input(s) {unknown}; accepted: "
                          f"{', '.join(NEEDS)}.")
    if "scores" in self.needs and self.score is None:
      raise ArgumentError(f"strategy {self.name!r} needs 'scores' but has no {{strategy.score}} "
                          "function (samples [S, n, C] -> [n]).")
    check_int(self.working_set, "strategy.working_set", 0)

  @property
  def needs_model(self) -> bool:
    """Whether the strategy uses the network's outputs (then the round's `pool_subset` applies)."""
    return bool(set(self.needs) - {"labeled"})


@dataclasses.dataclass(frozen=True)
class ClusterAnnotation:
  """Cluster-based annotation (the cluster paper): after training, k-means over the unlabeled
  pool's penultimate features; `clusters_per_round` random clusters are shown to an expert, who
  labels a whole cluster with its modal class when that class reaches `purity` (the simulated
  expert; a person decides for themself). `images`, a Strategy, also labels K single images each
  round: before the clusters (`images_first`, the paper's `<score>+cluster`) or after them
  (`cluster+<score>`). Every cluster shown and every image labeled is one interaction.

  The number of clusters is `num_clusters`, or (None) the selectable pool / `cluster_size`."""
  purity: float = 0.8
  clusters_per_round: int = 10
  cluster_size: int = 75
  num_clusters: int | None = None
  images: Strategy | None = None
  images_first: bool = True
  name: str = "cluster"

  def __post_init__(self):
    if not 0 < self.purity <= 1:
      raise ArgumentError(f"{{cluster_annotation.purity}} must be in (0, 1], got {self.purity}.")
    check_int(self.clusters_per_round, "cluster_annotation.clusters_per_round", 1)
    check_int(self.cluster_size, "cluster_annotation.cluster_size", 1)
    if self.num_clusters is not None:
      check_int(self.num_clusters, "cluster_annotation.num_clusters", 1)
    if self.images is not None and not isinstance(self.images, Strategy):
      raise ArgumentError(f"{{cluster_annotation.images}} must be a Strategy (e.g. entropy()) or "
                          "None, got "
                          f"{self.images!r}.")
    if self.images is not None and self.images.working_set:
      raise ArgumentError(f"{{cluster_annotation.images}}={self.images.name!r} works on a random "
                          "subset; cluster "
                          "annotation's images are chosen from the whole pool.")

  @property
  def several_samples(self) -> bool:
    return self.images is not None and self.images.several_samples

  def clusters(self, selectable: int) -> int:
    """The number of k-means clusters for a pool with `selectable` items."""
    if self.num_clusters is not None:
      return self.num_clusters
    return max(1, round(selectable / self.cluster_size))


AnyStrategy = Strategy | ClusterAnnotation


# ---------------------------------------------------------------------------------------------
# Random and top-K of a score

def _random(key, inputs, k, selectable):
  del inputs
  return random_select(key, selectable, k)


def _top_k(key, inputs, k, selectable):
  del key
  return top_k(inputs.scores, selectable, k)


def random() -> Strategy:  # pylint: disable=redefined-builtin
  """k unlabeled items uniformly at random (the baseline)."""
  return Strategy("random", _random)


def scored(score: ScoreFn, name: str | None = None, several_samples: bool = False) -> Strategy:
  """The top-K of any score of predictive samples [S, n, C] -> [n] (ties: lower index first)."""
  if not callable(score):
    raise ArgumentError(f"{{score}} must be a function of samples [S, n, C] -> [n], got "
                        f"{score!r}.")
  return Strategy(name or getattr(score, "__name__", "score"), _top_k, needs=("scores",),
                  score=score, several_samples=several_samples)


def _named_score(name: str) -> Strategy:
  return scored(scoring.SAMPLE_SCORES[name], name, several_samples=name in scoring.NEEDS_SAMPLES)


def entropy() -> Strategy:
  """Max entropy H[p̄] of the predictive mean."""
  return _named_score("entropy")


def margin() -> Strategy:
  """Smallest margin between the two most probable classes."""
  return _named_score("margin")


def least_confidence() -> Strategy:
  """Least confidence 1 - max p̄."""
  return _named_score("least_confidence")


def largest_margin() -> Strategy:
  """Smallest margin between the most and the least probable class."""
  return _named_score("largest_margin")


def bald() -> Strategy:
  """BALD (Houlsby et al. 2011; Gal et al. 2017): mutual information of label and weights."""
  return _named_score("bald")


def variation_ratios() -> Strategy:
  """Variation ratios 1 - modal votes / S (Freeman 1965; Gal et al. 2017)."""
  return _named_score("variation_ratios")


def mean_std() -> Strategy:
  """Mean over classes of the standard deviation over samples (Kampffmeyer et al. 2016)."""
  return _named_score("mean_std")


def _score_of(strategy: Strategy | ScoreFn, param: str) -> tuple[ScoreFn, str, bool]:
  if isinstance(strategy, Strategy):
    if strategy.score is None:
      raise ArgumentError(f"{{{param}}}={strategy.name!r} has no score; pass a scored strategy "
                          "such as entropy().")
    return strategy.score, strategy.name, strategy.several_samples
  if callable(strategy):
    return strategy, getattr(strategy, "__name__", "score"), False
  raise ArgumentError(f"{{{param}}} must be a scored strategy (e.g. entropy()) or a score "
                      f"function, got {strategy!r}.")


# ---------------------------------------------------------------------------------------------
# Uncertainty + diversity

def hybrid(score: Strategy | ScoreFn | None = None, alpha: float = 0.5, n_clusters: int = 5,
           balanced: bool = False, name: str | None = None) -> Strategy:
  """Hybrid selection (the hybrid paper): the top ceil(alpha K) by `score` (default entropy),
  k-means with `n_clusters` over their features, the rest of K nearest to a centroid
  (`balanced`: spread evenly over the clusters). See `jaxal.selection.hybrid`."""
  fn, _, several = _score_of(entropy() if score is None else score, "hybrid.score")
  if not 0 < alpha <= 1:
    raise ArgumentError(f"{{hybrid.alpha}} must be in (0, 1], got {alpha}.")
  check_int(n_clusters, "hybrid.n_clusters", 1)

  def select(key, inputs, k, selectable):
    n_top = math.ceil(alpha * k - 1e-9)
    if alpha < 1 and not 1 <= n_clusters <= n_top:
      raise ArgumentError(f"{{hybrid.n_clusters}}={n_clusters} must be between 1 and the "
                          f"uncertain share ceil({{hybrid.alpha}} * {{query_size}}) = {n_top}.")
    return hybrid_lib.hybrid_select(key, inputs.scores, inputs.features, selectable, k, alpha,
                                    n_clusters, balanced=balanced)

  return Strategy(name or ("hybrid_balanced" if balanced else "hybrid"), select,
                  needs=("scores", "features"), score=fn, several_samples=several)


def batchbald(num_configs: int = 1000) -> Strategy:
  """BatchBALD (Kirsch et al. 2019), greedy over the joint mutual information; label
  configurations enumerated exactly while C^b <= num_configs, else that many sampled."""
  check_int(num_configs, "batchbald.num_configs", 1)

  def select(key, inputs, k, selectable):
    return batchbald_lib.batchbald_select(key, inputs.samples, selectable, k, num_configs)

  return Strategy("batchbald", select, needs=("samples",), several_samples=True)


def power(score: Strategy | ScoreFn | None = None, beta: float = 1.0,
          name: str | None = None) -> Strategy:
  """Stochastic power sampling (Kirsch et al. 2023): K draws without replacement with probability
  proportional to score^beta (default score BALD)."""
  fn, score_name, several = _score_of(bald() if score is None else score, "power.score")
  if not beta > 0:
    raise ArgumentError(f"{{power.beta}} must be > 0, got {beta}.")

  def select(key, inputs, k, selectable):
    return power_lib.power_select(key, inputs.scores, selectable, k, beta)

  return Strategy(name or f"power_{score_name}", select, needs=("scores",), score=fn,
                  several_samples=several)


def coreset() -> Strategy:
  """Core-set / k-center greedy (Sener & Savarese 2018) on the penultimate features."""
  def select(key, inputs, k, selectable):
    del key
    ctx = inputs.context
    return coreset_lib.coreset_select(inputs.features, selectable, inputs.labeled, k,
                                      max_labeled=ctx.capacity, chunk=ctx.chunk)
  return Strategy("coreset", select, needs=("features", "labeled"))


def badge() -> Strategy:
  """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings."""
  def select(key, inputs, k, selectable):
    return badge_lib.badge_select(key, inputs.probs, inputs.features, selectable, k)
  return Strategy("badge", select, needs=("probs", "features"))


def typiclust(max_clusters: int = 500, neighbors: int = 20, graph_subset: int = 5000) -> Strategy:
  """TypiClust (Hacohen et al. 2022): the most typical item of the largest uncovered clusters, on
  at most `graph_subset` random unlabeled items plus the labeled ones (0 = the whole pool)."""
  check_int(max_clusters, "typiclust.max_clusters", 1)
  check_int(neighbors, "typiclust.neighbors", 1)
  check_int(graph_subset, "typiclust.graph_subset", 0)

  def select(key, inputs, k, selectable):
    ctx = inputs.context
    return typiclust_lib.typiclust_select(key, inputs.features, selectable, inputs.labeled, k,
                                          max_clusters=min(max_clusters, ctx.capacity),
                                          n_neighbors=neighbors, chunk=ctx.chunk)

  return Strategy("typiclust", select, needs=("features", "labeled"), working_set=graph_subset)


def probcover(delta: float = 0.0, purity: float = 0.95, graph_subset: int = 5000) -> Strategy:
  """ProbCover (Yehuda et al. 2022): greedy max coverage of delta-balls on L2-normalised features
  (delta 0 = the largest radius whose balls are pure for a `purity` share of the points, with
  k-means pseudo-labels), on at most `graph_subset` random unlabeled items plus the labeled ones."""
  if not delta >= 0:
    raise ArgumentError(f"{{probcover.delta}} must be >= 0 (0 = automatic), got "
                        f"{delta}.")
  if not 0 < purity <= 1:
    raise ArgumentError(f"{{probcover.purity}} must be in (0, 1], got {purity}.")
  check_int(graph_subset, "probcover.graph_subset", 0)

  def select(key, inputs, k, selectable):
    ctx = inputs.context
    return probcover_lib.probcover_select(key, inputs.features, selectable, inputs.labeled, k,
                                          delta=delta, purity=purity,
                                          num_classes=ctx.num_classes, chunk=ctx.chunk)

  return Strategy("probcover", select, needs=("features", "labeled"), working_set=graph_subset)


def cluster_margin(factor: float = 10.0, threshold: float = 0.0) -> Strategy:
  """Cluster-Margin (Citovsky et al. 2021): the factor * K lowest-margin items, average-linkage
  clusters (distance `threshold`, 0 = down to K clusters), round robin from the smallest."""
  if not factor >= 1:
    raise ArgumentError(f"{{cluster_margin.factor}} must be >= 1 (factor * K candidates), got "
                        f"{factor}.")
  if not threshold >= 0:
    raise ArgumentError(f"{{cluster_margin.threshold}} must be >= 0, got {threshold}.")

  def select(key, inputs, k, selectable):
    return cluster_margin_lib.cluster_margin_select(
        key, inputs.scores, inputs.features, selectable, k,
        num_candidates=math.ceil(factor * k - 1e-9), threshold=threshold)

  return Strategy("cluster_margin", select, needs=("scores", "features"),
                  score=scoring.SAMPLE_SCORES["margin"])


def kmeans() -> Strategy:
  """k-means with K clusters on the unlabeled features; the item nearest each centroid."""
  def select(key, inputs, k, selectable):
    return kmeans_lib.kmeans_select(key, inputs.features, selectable, k, chunk=inputs.context.chunk)
  return Strategy("kmeans", select, needs=("features",))


def margin_cluster_mean() -> Strategy:
  """Lowest margin weighted towards cluster means (see `jaxal.selection.margin_cluster_mean`)."""
  def select(key, inputs, k, selectable):
    return mcm_lib.margin_cluster_mean_select(key, 1.0 - inputs.scores, inputs.features,
                                              selectable, inputs.labeled, k,
                                              chunk=inputs.context.chunk)
  return Strategy("margin_cluster_mean", select, needs=("scores", "features", "labeled"),
                  score=scoring.SAMPLE_SCORES["margin"])


def cluster_annotation(purity: float = 0.8, clusters_per_round: int = 10, cluster_size: int = 75,
                       num_clusters: int | None = None, images: Strategy | None = None,
                       images_first: bool = True, name: str | None = None) -> ClusterAnnotation:
  """Cluster-based annotation (see `ClusterAnnotation`); `images=entropy()` also labels the K
  highest-entropy images each round, before the clusters or (`images_first=False`) after them."""
  if name is None:
    name = "cluster" if not isinstance(images, Strategy) else (
        f"{images.name}+cluster" if images_first else f"cluster+{images.name}")
  return ClusterAnnotation(purity=purity, clusters_per_round=clusters_per_round,
                           cluster_size=cluster_size, num_clusters=num_clusters, images=images,
                           images_first=images_first, name=name)
