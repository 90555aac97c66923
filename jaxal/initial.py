"""Who chooses the first labels of a simulated run (`--initial_by`).

  "random"    the balanced random initial set of `jaxal.data.make_splits`, one set per seed shared
              by every strategy (the default; it peeks at the labels to balance the classes);
  "strategy"  the strategy itself picks the first `initial_size` items from no labels at all, as
              in the TypiClust and ProbCover papers' protocol: the run starts from an empty labeled
              set, the strategy selects on the pool's embeddings (`--train=linear`: the head's
              features are its inputs, so nothing has to be trained first) and the simulated
              oracle labels its choice. A strategy that needs a trained network's predictions
              (margin, entropy, BADGE, hybrid, ...) or annotates clusters cannot choose without
              labels: it starts from the `random` strategy's choice, uniform over the pool and not
              balanced, so its results stay paired with random's seed for seed.

The choice is made once per seed before round 0, with the seed's own keys at a round number no run
reaches (`FIRST_ROUND`), and turned into that seed's `Splits`; rounds, checkpoints, resumption and
records are then those of any other run.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import acquisition, strategies
from jaxal.data.splits import Splits
from jaxal.state import LabeledArrays, STOP_ROUND
from jaxal.strategies import Strategy

INITIAL_BY = ("random", "strategy")
# The first choice uses the round keys of a round number no run reaches (the stop set has the last).
FIRST_ROUND = STOP_ROUND - 1
CHOOSES_ITSELF = {"features", "labeled"}   # what a strategy may need to select without labels


def chooses_itself(strategy) -> bool:
  """Whether `strategy` can pick items with nothing labeled and no trained network: it needs at
  most the features (the embeddings, with `--train=linear`) and the labeled mask."""
  return isinstance(strategy, Strategy) and set(strategy.needs) <= CHOOSES_ITSELF


def first_choice(round_fn, pool: LabeledArrays, seed: int, split: Splits, size: int,
                 select=None) -> np.ndarray:
  """int64 [size]: the pool items the strategy of `round_fn` (or `random`, see `chooses_itself`)
  selects for seed `seed` from an empty labeled set among `split.selectable`, sorted. `select`:
  `selection(round_fn, size)` when the caller reuses one compiled selection over seeds."""
  empty = dataclasses.replace(split, initial=np.zeros(0, np.int64))
  state = round_fn.init_state(seed, empty, np.asarray(pool.y), pool.x)
  state = state.replace(round=jnp.asarray(FIRST_ROUND, jnp.int32))
  picked = (select or selection(round_fn, size))(state, pool)
  return np.sort(np.asarray(picked, np.int64))


def selection(round_fn, size: int):
  """The jitted `(state, pool) -> int32 [size]` of the first choice (see `first_choice`)."""
  strategy = round_fn.strategy if chooses_itself(round_fn.strategy) else strategies.random()

  def select(state, pool):
    return acquisition.ask(state, pool, model=round_fn.model, strategy=strategy, k=size,
                           uncertainty=round_fn.uncertainty,
                           context=round_fn.context(pool.x.shape[0]),
                           pool_subset=round_fn.pool_subset)
  return jax.jit(select)


def strategy_splits(round_fn, pool: LabeledArrays, seeds: Sequence[int],
                    splits: Sequence[Splits], size: int) -> list[Splits]:
  """Per seed, `splits` with the initial set replaced by `first_choice` (validation set and
  selectable items unchanged)."""
  select = selection(round_fn, size)
  return [dataclasses.replace(sp, initial=first_choice(round_fn, pool, s, sp, size, select))
          for s, sp in zip(seeds, splits)]


__all__ = ["CHOOSES_ITSELF", "FIRST_ROUND", "INITIAL_BY", "chooses_itself", "first_choice",
           "selection", "strategy_splits"]
