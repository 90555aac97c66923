"""One active-learning round as a value: `round_fn = make_round(model, tx, strategy, budget=...)`.

    state, metrics = round_fn(state, pool, test)

A round trains on the labeled set, evaluates, asks the strategy for K pool items (`acquisition`),
has the simulated oracle answer and tells the state (`annotation`); for cluster annotation the
simulated expert labels whole clusters instead. `round_fn` is pure and jittable, and the shapes of
every array are the same in every round, so it compiles once. Its parts (`train`,
`train_and_evaluate`, `ask`, `ask_query`, `init_state`) are methods, so a driver, a person or a
notebook can run them one by one. `over_seeds` lifts any of them to a leading seed axis.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal import acquisition, annotation, progress, scoring, training
from jaxal import metrics as metrics_lib
from jaxal.data.splits import Splits
from jaxal.errors import ArgumentError, check_int
from jaxal.selection.primitives import random_select
from jaxal.state import (ALState, Budget, FIT, INIT, LabeledArrays, STOP, STOP_ROUND, TEST_MC,
                         TrainConfig, Uncertainty, round_key)
from jaxal.strategies import ClusterAnnotation, Context, Strategy


def init_model(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
               sample_x: jax.Array, members: int = 0):
  """Fresh (variables, opt_state); with `members` > 0, a stacked ensemble initialised from
  `members` independent keys (vmap)."""
  def one(k):
    v = training.init_variables(model, k, sample_x)
    return v, tx.init(v["params"])
  if members:
    return jax.vmap(one)(jax.random.split(key, members))
  return one(key)


def evaluate(model: nn.Module, variables: Any, x: jax.Array, y: jax.Array, *, num_classes: int,
             method: str = "deterministic", chunk: int = 1024):
  """Accuracy, per-class accuracy (NaN for a class absent from `y`) and expected calibration
  error (15 bins) of the predictive distribution `scoring.mean_probs` (the deterministic network,
  or an ensemble's mean)."""
  probs = training.apply_in_chunks(lambda xb: scoring.mean_probs(model, variables, xb, method), x,
                                   chunk)
  pred = jnp.argmax(probs, -1)
  return (metrics_lib.accuracy(pred, y), metrics_lib.per_class_accuracy(pred, y, num_classes),
          metrics_lib.expected_calibration_error(probs, y))


def evaluate_mc(model: nn.Module, variables: Any, x: jax.Array, y: jax.Array, key: jax.Array, *,
                num_samples: int, chunk: int = 1024, shared_trunk: bool = True) -> jax.Array:
  """Accuracy of the MC-dropout predictive mean over `num_samples` stochastic passes (dropout on,
  batch norm in inference mode; the trunk before the first dropout once per item)."""
  probs = scoring.score_pool(model, variables, x, key=key, method="mc_dropout",
                             score=lambda s: jnp.mean(s, axis=0), num_samples=num_samples,
                             chunk=chunk, shared_trunk=shared_trunk)
  return metrics_lib.accuracy(jnp.argmax(probs, -1), y)


@dataclasses.dataclass(frozen=True, eq=False)
class Round:
  """A round function and its parts, built by `make_round` (read its docstring)."""
  model: nn.Module
  tx: optax.GradientTransformation
  strategy: Strategy | ClusterAnnotation
  budget: Budget
  train_config: TrainConfig
  uncertainty: Uncertainty
  num_classes: int
  pool_subset: int = 0
  stop_set: int = 0
  # Static: call jaxal.progress at phase boundaries (host callbacks); False stages nothing.
  progress_hooks: bool = False

  def _phase(self, name: str, *after: jax.Array) -> None:
    """With `progress_hooks`, phase `name` starts once `after` is computed: tells the host
    (`jaxal.progress.phase_callback`, once per seed). The callback only reads the values."""
    if self.progress_hooks:
      jax.debug.callback(functools.partial(progress.phase_callback, name), *after)

  @property
  def name(self) -> str:
    return self.strategy.name

  @property
  def annotates_clusters(self) -> bool:
    return isinstance(self.strategy, ClusterAnnotation)

  def capacity(self, pool_size: int) -> int:
    """Static bound on the labeled set: `budget.capacity`, else initial + rounds * K, or the
    whole pool for cluster annotation (it labels a data-dependent number of items a round)."""
    if self.budget.capacity is not None:
      return self.budget.capacity
    return pool_size if self.annotates_clusters else self.budget.labels

  def context(self, pool_size: int) -> Context:
    return Context(capacity=self.capacity(pool_size), num_classes=self.num_classes,
                   chunk=self.train_config.eval_batch_size)

  # -- state -----------------------------------------------------------------------------------

  def init_state(self, seed: int, split: Splits, labels: np.ndarray, sample_x: jax.Array) -> ALState:
    """The state before round 0 of seed `seed`: the initial set of `split` labeled with `labels`
    (the pool's labels as the oracle knows them; only those of the initial set are read), a
    freshly initialised model (or ensemble)."""
    key = jax.random.PRNGKey(seed)
    labels = np.asarray(labels)
    n = labels.shape[0]
    labeled = np.zeros(n, bool)
    labeled[split.initial] = True
    known = np.full(n, -1, np.int32)
    known[split.initial] = labels[split.initial]
    variables, opt_state = self._init_model(round_key(key, 0, INIT), jnp.asarray(sample_x[:1]))
    return ALState(labeled=jnp.asarray(labeled), labels=jnp.asarray(known),
                   selectable=jnp.asarray(split.selectable),
                   val=jnp.asarray(split.val, jnp.int32), variables=variables,
                   opt_state=opt_state, key=key,
                   round=jnp.zeros((), jnp.int32), interactions=jnp.zeros((), jnp.int32))

  @functools.cached_property
  def _init_model(self):
    """`init_model` as one compiled program (run op by op, the initialisers dispatch about 30 small
    programs a seed, each compiled anew in every process: 2 s of a command's start)."""
    return jax.jit(lambda key, x: init_model(self.model, self.tx, key, x, self.uncertainty.members))

  def init_states(self, seeds: Sequence[int], splits: Sequence[Splits],
                  pool: LabeledArrays) -> ALState:
    """`init_state` of every seed, stacked on a leading seed axis."""
    y = np.asarray(pool.y)
    return stack_states([self.init_state(s, sp, y, pool.x) for s, sp in zip(seeds, splits)])

  # -- the round's parts -----------------------------------------------------------------------

  def train(self, state: ALState, pool: LabeledArrays):
    """Trains on the labeled set (from a fresh initialisation when `train_config.reinit`; an
    ensemble's members side by side with `vmap`). With `model_selection="best_val"` the labeled
    validation set (`state.val`, with its true labels) picks the epoch kept (each member its own).
    Returns (state with the trained variables, mean loss of the last epoch, info: best_epoch,
    epochs_run, best_val_accuracy; averaged over ensemble members)."""
    tc, members = self.train_config, self.uncertainty.members
    variables, opt_state = state.variables, state.opt_state
    if tc.reinit:
      init_round = 0 if tc.same_init else state.round
      variables, opt_state = init_model(self.model, self.tx,
                                        round_key(state.key, init_round, INIT), pool.x[:1], members)
    fit_key = round_key(state.key, state.round, FIT)
    val = {}
    if tc.model_selection != "last":
      val = {"val_x": pool.x[state.val], "val_y": pool.y[state.val]}
    fit = functools.partial(training.fit, self.model, self.tx, x=pool.x, labels=state.labels,
                            labeled=state.labeled, cfg=tc, capacity=self.capacity(pool.x.shape[0]),
                            return_info=True, **val)
    if members:
      variables, opt_state, loss, info = jax.vmap(
          lambda v, o, k: fit(variables=v, opt_state=o, key=k))(
              variables, opt_state, jax.random.split(fit_key, members))
      loss = jnp.mean(loss)
      info = jax.tree.map(lambda a: jnp.mean(a.astype(jnp.float32)), info)
    else:
      variables, opt_state, loss, info = fit(variables=variables, opt_state=opt_state, key=fit_key)
    return state.replace(variables=variables, opt_state=opt_state), loss, info

  def evaluate(self, state: ALState, x: jax.Array, y: jax.Array):
    """(accuracy, per-class accuracy, ECE) of the state's network on `x`, `y`."""
    return evaluate(self.model, state.variables, x, y, num_classes=self.num_classes,
                    method=self.uncertainty.method, chunk=self.train_config.eval_batch_size)

  def train_and_evaluate(self, state: ALState, pool: LabeledArrays,
                         test: LabeledArrays | None = None):
    """`train`, then validation (and, with a `test` set, test) metrics.

    Returns (state with the trained variables, metrics dict of scalars/arrays)."""
    self._phase("train", state.round)
    state, loss, info = self.train(state, pool)
    self._phase("evaluate", loss)
    val_acc, _, _ = self.evaluate(state, pool.x[state.val], pool.y[state.val])
    metrics = {"labels": state.num_labeled, "interactions": state.interactions,
               "val_accuracy": val_acc, "train_loss": loss,
               "best_epoch": info["best_epoch"].astype(jnp.float32),
               "epochs_run": info["epochs_run"].astype(jnp.float32)}
    chunk = self.train_config.eval_batch_size
    if test is not None:
      acc, per_class, ece = self.evaluate(state, test.x, test.y)
      metrics.update(test_accuracy=acc, per_class_accuracy=per_class, test_ece=ece)
      if self.uncertainty.test_mc_samples:
        metrics["test_accuracy_mc"] = evaluate_mc(
            self.model, state.variables, test.x, test.y,
            round_key(state.key, state.round, TEST_MC),
            num_samples=self.uncertainty.test_mc_samples, chunk=chunk,
            shared_trunk=self.uncertainty.shared_trunk)
    if self.stop_set:
      # The stop set: the same random selectable items every round (the key has no round in it).
      idx = random_select(round_key(state.key, STOP_ROUND, STOP), state.selectable, self.stop_set)
      probs = training.apply_in_chunks(
          lambda xb: scoring.mean_probs(self.model, state.variables, xb, self.uncertainty.method),
          pool.x[idx], chunk)
      metrics["stop_uncertainty"] = jnp.mean(scoring.entropy(probs)) / jnp.log(self.num_classes)
      metrics["stop_predictions"] = jnp.argmax(probs, -1).astype(jnp.int32)
    return state, metrics

  def _acquisition(self, pool: LabeledArrays) -> dict:
    return dict(model=self.model, k=self.budget.query_size, uncertainty=self.uncertainty,
                context=self.context(pool.x.shape[0]))

  def ask(self, state: ALState, pool: LabeledArrays) -> jax.Array:
    """The K pool indices the strategy wants labeled next (int32 [K]); after `train`."""
    if self.annotates_clusters:
      raise ValueError(f"ask: {self.name!r} annotates whole clusters; use ask_query or the round.")
    return acquisition.ask(state, pool, strategy=self.strategy, pool_subset=self.pool_subset,
                           **self._acquisition(pool))

  def ask_query(self, state: ALState, pool: LabeledArrays) -> annotation.Query:
    """The round's question for a person (`annotation.ask_query`); after `train`."""
    return annotation.ask_query(state, pool, strategy=self.strategy, pool_subset=self.pool_subset,
                                **self._acquisition(pool))

  def __call__(self, state: ALState, pool: LabeledArrays, test: LabeledArrays | None = None):
    """One full round: train, evaluate, ask, the simulated oracle answers (`pool.y`), tell; for
    cluster annotation the simulated expert labels whole clusters.

    Returns (next state, metrics with "selected": int32 [K])."""
    state, metrics = self.train_and_evaluate(state, pool, test)
    self._phase("select", metrics.get("test_accuracy", metrics["val_accuracy"]))
    if self.annotates_clusters:
      state, extra = annotation.cluster_round(state, pool, strategy=self.strategy,
                                              **self._acquisition(pool))
      return state, {**metrics, **extra}
    indices = self.ask(state, pool)
    return annotation.tell(state, indices, pool.y[indices]), {**metrics, "selected": indices}


def make_round(model: nn.Module, tx: optax.GradientTransformation,
               strategy: Strategy | ClusterAnnotation, *, budget: Budget,
               train: TrainConfig = TrainConfig(), uncertainty: Uncertainty = Uncertainty(),
               num_classes: int | None = None, pool_subset: int = 0, stop_set: int = 0) -> Round:
  """The round function of one strategy, checked before anything is compiled.

  Args:
    model: a jaxal network (`jaxal.get_model`): `apply` returns (logits, features).
    tx: the optimiser (`jaxal.make_optimizer(train)`).
    strategy: a `Strategy` or `ClusterAnnotation` value (`jaxal.strategies.*`).
    budget: initial size, K per round, rounds (and the derived labeled-set capacity).
    train: how the network is trained each round.
    uncertainty: how predictive samples are drawn.
    num_classes: C; default `model.num_classes`.
    pool_subset: if > 0, strategies that use the network score only this many random unlabeled
      items per round (Gal et al.: 2,000) and select among them; 0 = the whole pool.
    stop_set: size of the fixed random sample of selectable items predicted after every round's
      training for the stopping rules on uncertainty and agreement (`jaxal.stopping`); 0 = none.
  Returns:
    a `Round`: `round_fn(state, pool, test=None) -> (state, metrics)`, pure and jittable, with its
    parts as methods (`init_states`, `train_and_evaluate`, `ask`, `ask_query`).
  """
  if not isinstance(model, nn.Module):
    raise ArgumentError(f"{{model}} must be a flax.linen Module (see jaxal.get_model), got "
                        f"{type(model).__name__}.")
  if not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise ArgumentError(f"{{tx}} must be an optax GradientTransformation, got "
                        f"{type(tx).__name__}.")
  if not isinstance(strategy, (Strategy, ClusterAnnotation)):
    raise ArgumentError(f"{{strategy}} must be a strategy value such as jaxal.strategies.entropy()"
                        f" or your own jaxal.Strategy, got {strategy!r}.")
  for name, value, kind in (("budget", budget, Budget), ("train", train, TrainConfig),
                            ("uncertainty", uncertainty, Uncertainty)):
    if not isinstance(value, kind):
      raise ArgumentError(f"{{{name}}} must be a jaxal.{kind.__name__}, got {value!r}.")
  if num_classes is None:
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
      raise ArgumentError("{num_classes} is needed: the model has no num_classes attribute.")
  check_int(num_classes, "num_classes", 2)
  check_int(pool_subset, "pool_subset", 0)
  check_int(stop_set, "stop_set", 0)
  if pool_subset and pool_subset < budget.query_size:
    raise ArgumentError(f"{{pool_subset}}={pool_subset} must be at least {{query_size}}="
                        f"{budget.query_size} (or 0 to score the whole pool).")
  scoring.check_method(model, uncertainty.method)
  if uncertainty.method == "deterministic" and strategy.several_samples:
    raise ArgumentError(f"strategy {strategy.name!r} needs several predictive samples; set "
                        "{uncertainty.method}=mc_dropout or ensemble.")
  return Round(model=model, tx=tx, strategy=strategy, budget=budget, train_config=train,
               uncertainty=uncertainty, num_classes=int(num_classes),
               pool_subset=int(pool_subset), stop_set=int(stop_set))


SEED_BATCHING = ("auto", "vmap", "map")


def over_seeds(fn: Callable, how: str = "auto") -> Callable:
  """Lifts `fn(state, *args)` to a leading seed axis of the state (the other arguments shared):
  `vmap` (seeds side by side in one batched program) or `map` (`lax.map`: one compiled loop over
  seeds). "auto" picks `map` on CPU, where XLA lowers convolutions with per-seed weights to grouped
  convolutions that ran 22x slower than separate ones (BUILD_NOTES.md), and `vmap` elsewhere."""
  if how == "auto":
    how = "map" if jax.default_backend() == "cpu" else "vmap"
  if how == "vmap":
    return lambda states, *args: jax.vmap(lambda s: fn(s, *args))(states)
  if how == "map":
    return lambda states, *args: jax.lax.map(lambda s: fn(s, *args), states)
  raise ArgumentError(f"{{seed_batching}}: unknown value {how!r}; accepted: "
                      f"{', '.join(SEED_BATCHING)}.")


def stack_states(states: Sequence[ALState]) -> ALState:
  """Stacks per-seed states on a leading seed axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)
