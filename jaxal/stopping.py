"""Stopping rules: when an active-learning run should stop asking, and which rule said so.

Rules are checked on the host after every acquisition round, per seed, from the round's metrics:

- `max_labels`: the labeled set (after the round's answers) reached this size;
- `max_interactions`: the human interactions spent reached this number;
- `min_uncertainty`: the mean normalised predictive entropy H[p̄] / log C over the stop set fell
  below this value (the model is confident about the pool; Zhu et al. 2008, "max-confidence");
- `agreement`: the share of stop-set items whose predicted class did not change from the previous
  round reached this value for `patience` consecutive rounds ("stabilising predictions", Bloodgood
  & Vijay-Shanker 2009; they use Cohen's kappa on a stop set, we use the plain agreement rate).

The stop set is a fixed random sample of `make_round(stop_set=...)` selectable pool items per seed (the
same items every round; drawn from the seed's key), predicted by the deterministic network after
each round's training. A run stops when a rule has fired for every seed (seeds run as one program);
it then trains once more on the labels acquired so far (the final evaluation) and each seed's record
says which rule fired first for it and at which round (`"stopped"`). When the rules fired for some
seeds only, the run goes on to `--rounds` and those seeds' records say so in `"stop_fired"`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxal.errors import ArgumentError

RULES = ("max_labels", "max_interactions", "min_uncertainty", "agreement")


@dataclasses.dataclass(frozen=True)
class StopRules:
  """Thresholds; 0 turns a rule off."""
  max_labels: int = 0
  max_interactions: int = 0
  min_uncertainty: float = 0.0
  agreement: float = 0.0
  patience: int = 1

  def __post_init__(self):
    for name in ("max_labels", "max_interactions"):
      if getattr(self, name) < 0:
        raise ArgumentError(f"{{stop.{name}}}={getattr(self, name)} must be >= 0 (0 = off).")
    if not 0.0 <= self.min_uncertainty <= 1.0:
      raise ArgumentError(f"{{stop.min_uncertainty}}={self.min_uncertainty} must be in [0, 1] "
                          "(0 = off).")
    if not 0.0 <= self.agreement <= 1.0:
      raise ArgumentError(f"{{stop.agreement}}={self.agreement} must be in [0, 1] (0 = off).")
    if self.patience < 1:
      raise ArgumentError(f"{{stop.patience}}={self.patience} must be at least 1.")

  @property
  def active(self) -> bool:
    return bool(self.max_labels or self.max_interactions or self.min_uncertainty or
                self.agreement)

  @property
  def needs_stop_set(self) -> bool:
    return bool(self.min_uncertainty or self.agreement)


class StopTracker:
  """Per-seed state of the rules across rounds (the agreement streaks and previous predictions)."""

  def __init__(self, rules: StopRules, seeds: int):
    self.rules = rules
    self.previous: list[np.ndarray | None] = [None] * seeds
    self.streak = [0] * seeds
    self.fired: list[dict | None] = [None] * seeds

  def update(self, r: int, labels: np.ndarray, interactions: np.ndarray,
             uncertainty: np.ndarray | None, predictions: np.ndarray | None) -> bool:
    """Checks round `r` for every seed (labels and interactions after the round's answers;
    the stop set's mean normalised entropy [seeds] and predicted classes [seeds, M] at the round's
    evaluation). Records the first rule that fires per seed; returns True when every seed has
    fired."""
    rules = self.rules
    for i in range(len(self.fired)):
      fired = []
      if rules.max_labels and labels[i] >= rules.max_labels:
        fired.append("max_labels")
      if rules.max_interactions and interactions[i] >= rules.max_interactions:
        fired.append("max_interactions")
      if rules.min_uncertainty and uncertainty is not None and \
          uncertainty[i] < rules.min_uncertainty:
        fired.append("min_uncertainty")
      if rules.agreement and predictions is not None:
        prev = self.previous[i]
        if prev is not None and np.mean(prev == predictions[i]) >= rules.agreement:
          self.streak[i] += 1
        else:
          self.streak[i] = 0
        self.previous[i] = np.array(predictions[i])
        if self.streak[i] >= rules.patience:
          fired.append("agreement")
      if fired and self.fired[i] is None:
        self.fired[i] = {"rule": fired[0], "round": int(r)}
    return all(f is not None for f in self.fired)
