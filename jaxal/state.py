"""The state of an active-learning run, and the small static configurations around it."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ALState:
  """Everything that changes from round to round, for one seed (or a stack of seeds under vmap).

  Attributes:
    labeled: bool [N] over the pool, True once an item's label is known to the learner.
    labels: int32 [N] the learner's labels, -1 where unknown. An oracle may write a wrong label.
    selectable: bool [N] items that may ever be queried (False for the validation set).
    val: int32 [V] pool indices of the labeled validation set.
    variables: the model's variables (params, and batch stats where the model has them); with a
      leading member axis [M, ...] for a deep ensemble.
    opt_state: the optimiser state for `variables["params"]` (member axis likewise).
    key: the seed's root PRNG key (uint32 [2]); round keys are `fold_in(key, round)`, so a resumed
      run draws exactly the numbers an uninterrupted one would.
    round: int32 scalar, rounds completed.
    interactions: int32 scalar, human interactions spent so far (one per image or cluster shown).
  """
  labeled: jax.Array
  labels: jax.Array
  selectable: jax.Array
  val: jax.Array
  variables: Any
  opt_state: Any
  key: jax.Array
  round: jax.Array
  interactions: jax.Array

  @property
  def num_labeled(self) -> jax.Array:
    return jnp.sum(self.labeled, axis=-1)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the model is trained each round (static: part of the compiled program).

  `weight_decay` is PyTorch-style L2 added to the gradient; `l2_per_label` = c adds the Keras-style
  penalty (c / n) * sum(kernel^2) to the loss, n the labeled count, as Gal et al.'s code does
  (c = 3.5): strong regularisation when few labels are known, weaker as the set grows.
  `reinit` re-initialises the model every round; with `same_init` it is reset to the same initial
  weights every round (the cluster paper) instead of drawing fresh ones.

  Model selection on the labeled validation set: with `model_selection="best_val"`, the network
  is evaluated on the validation set every `val_every` epochs and the round keeps the variables
  (and optimiser state) of the best evaluation: highest validation accuracy, ties broken by the
  lower validation cross-entropy, then by the earlier epoch. `early_stopping` = P > 0 ends
  training after P evaluations in a row without a better one (it needs "best_val"). With "last"
  (the default) the variables after the last epoch are kept and the validation set is only
  reported."""
  epochs: int = 50
  batch_size: int = 32
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  momentum: float = 0.9
  weight_decay: float = 0.0
  l2_per_label: float = 0.0
  reinit: bool = True
  same_init: bool = False
  eval_batch_size: int = 1024
  model_selection: str = "last"
  val_every: int = 1
  early_stopping: int = 0


@dataclasses.dataclass(frozen=True)
class RoundConfig:
  """One round's static settings.

  Attributes:
    strategy: name from `jaxal.strategies.STRATEGIES`.
    query_size: K, items labeled per round.
    capacity: the largest labeled-set size the run can reach (initial + rounds * K); it fixes the
      shape of the training index buffer so no round recompiles.
    num_classes: C.
    train: the training configuration.
    uncertainty: "deterministic", "mc_dropout" or "ensemble" (how predictive samples are drawn).
    mc_samples: S, stochastic passes for "mc_dropout".
    ensemble_size: M, members trained side by side (vmap) for "ensemble".
    pool_subset: if > 0, each round scores only this many unlabeled items drawn at random (as Gal
      et al. did) and selects the top-K among them; 0 scores the whole pool.
    shared_trunk: MC dropout computes the network before its first dropout layer once.
    hybrid_score, alpha, n_clusters: hybrid selection (score ranking the top ⌈αK⌉, share α of K,
      k-means clusters over them).
    num_clusters, clusters_per_round, purity: cluster-based annotation (k-means clusters over the
      unlabeled pool, clusters shown per round, the expert's purity threshold).
    batchbald_configs: BatchBALD's M: label configurations of the chosen points enumerated exactly
      while C^b <= M, else M sampled (cost O(K N S M C) per round).
    power_beta: coldness beta of `power_bald` / `power_entropy` (probability ~ score^beta).
    graph_subset: `typiclust` and `probcover` work on at most this many random unlabeled items
      (plus the labeled ones); their costs grow with its square (ProbCover keeps a bool
      [n, n] ball graph). 0 = the whole pool. `pool_subset`, when smaller, applies instead.
    typiclust_max_clusters, typiclust_neighbors: TypiClust's cap on the number of clusters (the
      authors' 500) and neighbours for typicality (20).
    probcover_delta, probcover_purity: ProbCover's ball radius on L2-normalised features (0 =
      the largest radius whose balls are pure for a `probcover_purity` share of the points, with
      k-means pseudo-labels of `num_classes` clusters).
    test_mc_samples: if > 0 (with "mc_dropout"), each evaluation also records
      `test_accuracy_mc`: the test accuracy of the MC-dropout predictive mean over this many
      stochastic passes (Gal et al.'s "dropout approximation at test time"), beside
      `test_accuracy`, which is always the deterministic network's. 0 = not recorded.
    stop_set: size of the fixed random sample of selectable pool items predicted after every
      round's training for the uncertainty and agreement stopping rules (`jaxal.stopping`); 0 =
      none (the rules that need it are off).
    cluster_margin_factor, cluster_margin_threshold: Cluster-Margin's k_m / K (lowest-margin
      candidates clustered per round) and average-linkage distance threshold epsilon (0 = merge
      down to K clusters).
  """
  strategy: str
  query_size: int
  capacity: int
  num_classes: int
  train: TrainConfig = TrainConfig()
  uncertainty: str = "deterministic"
  mc_samples: int = 20
  ensemble_size: int = 5
  pool_subset: int = 0
  shared_trunk: bool = True
  hybrid_score: str = "entropy"
  alpha: float = 0.5
  n_clusters: int = 10
  num_clusters: int = 0
  clusters_per_round: int = 0
  purity: float = 0.8
  batchbald_configs: int = 1000
  power_beta: float = 1.0
  graph_subset: int = 5000
  typiclust_max_clusters: int = 500
  typiclust_neighbors: int = 20
  probcover_delta: float = 0.0
  probcover_purity: float = 0.95
  cluster_margin_factor: float = 10.0
  cluster_margin_threshold: float = 0.0
  stop_set: int = 0
  test_mc_samples: int = 0

  @property
  def members(self) -> int:
    """Leading member axis of the variables (0 = none)."""
    return self.ensemble_size if self.uncertainty == "ensemble" else 0
