"""The state of an active-learning run, the arrays it reads, and the small frozen configurations
of the components around it (training, predictive uncertainty, budget).

Each configuration checks its own values when it is made and names the parameter at fault
(`jaxal.errors.ArgumentError`); the round (`jaxal.round.make_round`) takes them as values.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxal.errors import ArgumentError, check_choice, check_int


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


@struct.dataclass
class LabeledArrays:
  """Read-only images and their true labels (the pool, or the test set). Not state: arguments.

  x: float32 [N, H, W, C] (normalised); y: int32 [N]. For the pool, only the simulated oracle and
  the validation metrics read `y`.
  """
  x: jax.Array
  y: jax.Array


# Sub-streams of a round key: fold_in(fold_in(root, round), STREAM). Every consumer has its own.
INIT, FIT, SELECT, ORACLE, SCORE, SUBSET, KMEANS, SHOW, MEMBERS, STOP, TEST_MC = range(11)
# The stop set is the same every round: its key folds in a round number no run reaches.
STOP_ROUND = 2**31 - 1


def round_key(key: jax.Array, round_: jax.Array | int, stream: int) -> jax.Array:
  """The key of `stream` in round `round_` of the seed whose root key is `key`."""
  return jax.random.fold_in(jax.random.fold_in(key, round_), stream)


OPTIMIZERS = ("sgd", "adam")
MODEL_SELECTIONS = ("last", "best_val")
METHODS = ("deterministic", "mc_dropout", "ensemble")


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

  def __post_init__(self):
    for name, low in (("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1), ("val_every", 1),
                      ("early_stopping", 0)):
      check_int(getattr(self, name), f"train.{name}", low)
    check_choice(self.optimizer, "train.optimizer", OPTIMIZERS)
    check_choice(self.model_selection, "train.model_selection", MODEL_SELECTIONS)
    if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
      raise ArgumentError(f"{{train.learning_rate}} must be a finite number > 0, got "
                          f"{self.learning_rate}.")
    if not 0 <= self.momentum < 1:
      raise ArgumentError(f"{{train.momentum}} must be in [0, 1), got {self.momentum}.")
    for name in ("weight_decay", "l2_per_label"):
      value = getattr(self, name)
      if not (value >= 0 and math.isfinite(value)):
        raise ArgumentError(f"{{train.{name}}} must be a finite number >= 0, got {value}.")
    for name, unset in (("early_stopping", 0), ("val_every", 1)):
      if getattr(self, name) != unset and self.model_selection != "best_val":
        raise ArgumentError(f"{{train.{name}}}={getattr(self, name)} needs "
                            "{train.model_selection}=best_val.")


@dataclasses.dataclass(frozen=True)
class Uncertainty:
  """How predictive samples [S, N, C] are drawn for scoring (`jaxal.scoring.predict_samples`).

  method: "deterministic" (S = 1), "mc_dropout" (S = `mc_samples` passes with dropout on) or
    "ensemble" (S = `ensemble_size` members trained side by side with vmap).
  shared_trunk: MC dropout computes the network before its first dropout layer once per item.
  test_mc_samples: if > 0 (with "mc_dropout"), every evaluation also records `test_accuracy_mc`,
    the test accuracy of the mean of this many MC-dropout passes (Gal et al.'s test-time dropout);
    `test_accuracy` stays the deterministic network's.
  """
  method: str = "deterministic"
  mc_samples: int = 20
  ensemble_size: int = 5
  shared_trunk: bool = True
  test_mc_samples: int = 0

  def __post_init__(self):
    check_choice(self.method, "uncertainty.method", METHODS)
    check_int(self.mc_samples, "uncertainty.mc_samples", 1)
    check_int(self.ensemble_size, "uncertainty.ensemble_size", 1)
    check_int(self.test_mc_samples, "uncertainty.test_mc_samples", 0)
    if self.test_mc_samples and self.method != "mc_dropout":
      raise ArgumentError(f"{{uncertainty.test_mc_samples}}={self.test_mc_samples} averages "
                          "MC-dropout passes at test time and needs {uncertainty.method}="
                          f"mc_dropout (got {self.method!r}).")

  @property
  def members(self) -> int:
    """Leading member axis of the variables (0 = none)."""
    return self.ensemble_size if self.method == "ensemble" else 0

  @property
  def num_samples(self) -> int:
    return {"deterministic": 1, "mc_dropout": self.mc_samples,
            "ensemble": self.ensemble_size}[self.method]


@dataclasses.dataclass(frozen=True)
class Budget:
  """How many labels a run buys: `initial_size` before round 0, then `query_size` (K) per round for
  `rounds` rounds.

  capacity: the largest labeled set the run can reach; it fixes the shape of the training index
  buffer, so no round recompiles. None (the default) derives it: initial_size + rounds * K, or the
  whole pool for strategies that label more than K items a round (cluster annotation). A capacity
  smaller than that is refused (training would silently drop labels).
  """
  initial_size: int
  query_size: int
  rounds: int
  capacity: int | None = None

  def __post_init__(self):
    check_int(self.initial_size, "budget.initial_size", 0)
    check_int(self.query_size, "budget.query_size", 1)
    check_int(self.rounds, "budget.rounds", 0)
    if self.capacity is not None:
      check_int(self.capacity, "budget.capacity", 1)
      if self.capacity < self.labels:
        raise ArgumentError(
            f"{{budget.capacity}}={self.capacity} is smaller than the labels the run reaches, "
            f"{{budget.initial_size}} + {{budget.rounds}} * {{budget.query_size}} = "
            f"{self.initial_size} + {self.rounds} * {self.query_size} = {self.labels}; leave it "
            "unset to derive it.")

  @property
  def labels(self) -> int:
    """Labels after the last round when every query is answered: initial + rounds * K."""
    return self.initial_size + self.rounds * self.query_size
