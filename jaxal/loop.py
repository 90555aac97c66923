"""The active-learning loop: `ask` / `tell` over an immutable `ALState`, a pure `round_fn`, and a
Python driver `run` that vmaps seeds and calls one compiled round per step.

    state_{t+1}, metrics_t = round_fn(state_t, pool, test)

A round trains on the labeled set, evaluates, asks for K pool items, has the oracle answer and
tells the state. The shapes of every array are the same in every round, so it compiles once.
"""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxal import metrics as metrics_lib
from jaxal import clustering, kmeans as km, oracles, scoring, stopping, strategies, training
from jaxal.data.splits import Splits
from jaxal.state import ALState, RoundConfig

# Sub-streams of a round key: fold_in(fold_in(root, round), STREAM).
_INIT, _FIT, _SELECT, _ORACLE, _SCORE, _SUBSET, _KMEANS, _SHOW = 0, 1, 2, 3, 4, 5, 6, 7
# The stop set is the same every round: its key folds in a value no round reaches.
_STOP_ROUND, _STOP = 2**31 - 1, 9
_TEST_MC = 10


@struct.dataclass
class LabeledArrays:
  """Read-only images and their true labels (the pool, or the test set). Not state: arguments.

  x: float32 [N, H, W, C] (normalised); y: int32 [N]. For the pool, only the oracle reads `y`.
  """
  x: jax.Array
  y: jax.Array


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


def init_state(seed: int, splits: Splits, y_true: np.ndarray, model: nn.Module,
               tx: optax.GradientTransformation, sample_x: jax.Array,
               members: int = 0) -> ALState:
  """The state before round 0: the initial set labeled by the oracle, a freshly initialised model
  (or ensemble of `members` models)."""
  key = jax.random.PRNGKey(seed)
  n = y_true.shape[0]
  labeled = np.zeros(n, bool)
  labeled[splits.initial] = True
  labels = np.full(n, -1, np.int32)
  labels[splits.initial] = y_true[splits.initial]
  variables, opt_state = init_model(model, tx, _round_key(key, 0, _INIT), sample_x[:1], members)
  return ALState(labeled=jnp.asarray(labeled), labels=jnp.asarray(labels),
                 selectable=jnp.asarray(splits.selectable),
                 val=jnp.asarray(splits.val, jnp.int32), variables=variables,
                 opt_state=opt_state, key=key,
                 round=jnp.zeros((), jnp.int32), interactions=jnp.zeros((), jnp.int32))


def _round_key(key: jax.Array, round_: jax.Array | int, stream: int) -> jax.Array:
  return jax.random.fold_in(jax.random.fold_in(key, round_), stream)


def train(state: ALState, pool: LabeledArrays, *, model: nn.Module,
          tx: optax.GradientTransformation, cfg: RoundConfig, return_info: bool = False):
  """Trains on the labeled set (from a fresh initialisation when `cfg.train.reinit`; an ensemble's
  members side by side with `vmap`). With `cfg.train.model_selection == "best_val"` the labeled
  validation set (`state.val`, with its true labels) picks the epoch kept (each ensemble member its
  own). Returns (state with the trained variables, mean loss of the last epoch) [+ the info dict of
  `training.fit`: best_epoch, epochs_run, best_val_accuracy; averaged over ensemble members]."""
  tc = cfg.train
  variables, opt_state = state.variables, state.opt_state
  if tc.reinit:
    init_round = 0 if tc.same_init else state.round
    variables, opt_state = init_model(model, tx, _round_key(state.key, init_round, _INIT),
                                      pool.x[:1], cfg.members)
  fit_key = _round_key(state.key, state.round, _FIT)
  val = {}
  if tc.model_selection != "last":
    val = {"val_x": pool.x[state.val], "val_y": pool.y[state.val]}
  fit = functools.partial(training.fit, model, tx, x=pool.x, labels=state.labels,
                          labeled=state.labeled, cfg=tc, capacity=cfg.capacity, return_info=True,
                          **val)
  if cfg.members:
    variables, opt_state, loss, info = jax.vmap(
        lambda v, o, k: fit(variables=v, opt_state=o, key=k))(
            variables, opt_state, jax.random.split(fit_key, cfg.members))
    loss = jnp.mean(loss)
    info = jax.tree.map(lambda a: jnp.mean(a.astype(jnp.float32)), info)
  else:
    variables, opt_state, loss, info = fit(variables=variables, opt_state=opt_state, key=fit_key)
  state = state.replace(variables=variables, opt_state=opt_state)
  return (state, loss, info) if return_info else (state, loss)


def train_and_evaluate(state: ALState, pool: LabeledArrays, test: LabeledArrays, *,
                       model: nn.Module, tx: optax.GradientTransformation, cfg: RoundConfig):
  """`train`, then test and validation accuracy.

  Returns (state with the trained variables, metrics dict of scalars/arrays)."""
  state, loss, info = train(state, pool, model=model, tx=tx, cfg=cfg, return_info=True)
  variables = state.variables
  test_acc, per_class, test_ece = evaluate(model, variables, test.x, test.y, cfg)
  val_acc, _, _ = evaluate(model, variables, pool.x[state.val], pool.y[state.val], cfg)
  metrics = {"labels": state.num_labeled, "interactions": state.interactions,
             "test_accuracy": test_acc, "per_class_accuracy": per_class,
             "test_ece": test_ece, "val_accuracy": val_acc, "train_loss": loss,
             "best_epoch": info["best_epoch"].astype(jnp.float32),
             "epochs_run": info["epochs_run"].astype(jnp.float32)}
  if cfg.test_mc_samples:
    metrics["test_accuracy_mc"] = evaluate_mc(model, variables, test.x, test.y, cfg,
                                              _round_key(state.key, state.round, _TEST_MC))
  if cfg.stop_set:
    # The stop set: the same random selectable items every round (the key has no round in it).
    idx = strategies.random_select(_round_key(state.key, _STOP_ROUND, _STOP), state.selectable,
                                   cfg.stop_set)
    probs = training.apply_in_chunks(
        lambda xb: scoring.mean_probs(model, variables, xb, cfg.uncertainty), pool.x[idx],
        cfg.train.eval_batch_size)
    metrics["stop_uncertainty"] = jnp.mean(scoring.entropy(probs)) / jnp.log(
        cfg.num_classes)
    metrics["stop_predictions"] = jnp.argmax(probs, -1).astype(jnp.int32)
  return state, metrics


def evaluate(model: nn.Module, variables: Any, x: jax.Array, y: jax.Array, cfg: RoundConfig):
  """Accuracy, per-class accuracy and expected calibration error (15 bins) of the predictive
  distribution (`scoring.mean_probs`)."""
  probs = training.apply_in_chunks(
      lambda xb: scoring.mean_probs(model, variables, xb, cfg.uncertainty), x,
      cfg.train.eval_batch_size)
  pred = jnp.argmax(probs, -1)
  return (metrics_lib.accuracy(pred, y), metrics_lib.per_class_accuracy(pred, y, cfg.num_classes),
          metrics_lib.expected_calibration_error(probs, y))


def evaluate_mc(model: nn.Module, variables: Any, x: jax.Array, y: jax.Array, cfg: RoundConfig,
                key: jax.Array) -> jax.Array:
  """Accuracy of the MC-dropout predictive mean over `cfg.test_mc_samples` stochastic passes
  (dropout on, batch norm in inference mode; the trunk before the first dropout once per item)."""
  probs = scoring.score_pool(model, variables, x, key=key, method="mc_dropout",
                             score=lambda s: jnp.mean(s, axis=0),
                             num_samples=cfg.test_mc_samples, chunk=cfg.train.eval_batch_size,
                             shared_trunk=cfg.shared_trunk)
  return metrics_lib.accuracy(jnp.argmax(probs, -1), y)


def pool_features(model: nn.Module, variables: Any, x: jax.Array, cfg: RoundConfig) -> jax.Array:
  """Penultimate-layer features [N, D] of the deterministic network (member 0 of an ensemble)."""
  if cfg.members:
    variables = jax.tree.map(lambda a: a[0], variables)
  return training.predict(model, variables, x, cfg.train.eval_batch_size)[1]


def _pool_scores(state: ALState, x: jax.Array, model: nn.Module, cfg: RoundConfig,
                 strategy: strategies.Strategy) -> jax.Array:
  return scoring.score_pool(model, state.variables, x,
                            key=_round_key(state.key, state.round, _SCORE),
                            method=cfg.uncertainty, score=strategy.score,
                            num_samples=cfg.mc_samples, chunk=cfg.train.eval_batch_size,
                            shared_trunk=cfg.shared_trunk)


def _pool_samples(state: ALState, x: jax.Array, model: nn.Module, cfg: RoundConfig) -> jax.Array:
  """Predictive samples [S, n, C] of `x`, in chunks; the same draws `_pool_scores` scores."""
  rows = scoring.score_pool(model, state.variables, x,
                            key=_round_key(state.key, state.round, _SCORE),
                            method=cfg.uncertainty, score=lambda s: jnp.swapaxes(s, 0, 1),
                            num_samples=cfg.mc_samples, chunk=cfg.train.eval_batch_size,
                            shared_trunk=cfg.shared_trunk)
  return jnp.swapaxes(rows, 0, 1)


def _pool_outputs(model: nn.Module, variables: Any, x: jax.Array,
                  cfg: RoundConfig) -> tuple[jax.Array, jax.Array]:
  """Class probabilities [n, C] and penultimate features [n, D] of the deterministic network
  (member 0 of an ensemble, as `pool_features`), from one pass."""
  if cfg.members:
    variables = jax.tree.map(lambda a: a[0], variables)
  logits, features = training.predict(model, variables, x, cfg.train.eval_batch_size)
  return jax.nn.softmax(logits, axis=-1), features


def _working_set(state: ALState, candidates: jax.Array, cfg: RoundConfig,
                 strategy: strategies.Strategy):
  """The items a "pool" strategy sees: the whole pool, or (with `cfg.pool_subset`, or
  `cfg.graph_subset` for graph strategies, smaller than the pool) that many random candidates
  followed, when the strategy needs the labeled set, by the labeled items gathered into a buffer of
  min(capacity, N) slots. Returns (pool indices int32 [n] or None for the whole pool,
  candidates bool [n], labeled bool [n])."""
  n = candidates.shape[0]
  size = cfg.pool_subset
  if strategy.graph and cfg.graph_subset:
    size = min(size, cfg.graph_subset) if size else cfg.graph_subset
  if not size or size >= n:
    return None, candidates, state.labeled
  subset = strategies.random_select(_round_key(state.key, state.round, _SUBSET), candidates, size)
  if "labeled" not in strategy.needs:
    return subset, candidates[subset], jnp.zeros(size, bool)
  cap = min(cfg.capacity, n)
  labeled = jnp.nonzero(state.labeled, size=cap, fill_value=0)[0].astype(subset.dtype)
  labeled_ok = jnp.arange(cap) < jnp.sum(state.labeled)
  return (jnp.concatenate([subset, labeled]),
          jnp.concatenate([candidates[subset], jnp.zeros(cap, bool)]),
          jnp.concatenate([jnp.zeros(size, bool), labeled_ok]))


def _ask_pool(state: ALState, pool: LabeledArrays, model: nn.Module, cfg: RoundConfig,
              strategy: strategies.Strategy, candidates: jax.Array,
              select_key: jax.Array) -> jax.Array:
  """`ask` for "pool" strategies: computes what `strategy.needs` over the working set and maps the
  selection back to pool indices."""
  index, cand, labeled = _working_set(state, candidates, cfg, strategy)
  x = pool.x if index is None else pool.x[index]
  probs = features = None
  if {"probs", "features"} & set(strategy.needs):
    probs, features = _pool_outputs(model, state.variables, x, cfg)
  inputs = strategies.PoolInputs(
      candidates=cand, labeled=labeled,
      scores=(_pool_scores(state, x, model, cfg, strategy) if "scores" in strategy.needs
              else None),
      samples=_pool_samples(state, x, model, cfg) if "samples" in strategy.needs else None,
      probs=probs, features=features)
  picked = strategy.selector(select_key, inputs, cfg.query_size, cfg)
  return picked if index is None else index[picked]


def ask(state: ALState, pool: LabeledArrays, *, model: nn.Module, cfg: RoundConfig) -> jax.Array:
  """The K pool indices the strategy wants labeled next (int32 [K], distinct, unlabeled).

  Scores come from `scoring.score_pool` on predictive samples drawn by `cfg.uncertainty`; with
  `cfg.pool_subset` > 0 only that many random unlabeled items are scored. Hybrid strategies also
  use the pool's penultimate features; "pool" strategies (BatchBALD, power sampling, core-set,
  BADGE, TypiClust, ProbCover, Cluster-Margin, k-means, margin-cluster-mean) get what they need from
  `_ask_pool`. (Cluster annotation is not a query of K images: see `cluster_round`.)"""
  strategy = strategies.get_strategy(cfg.strategy, cfg.hybrid_score)
  if strategy.kind == "cluster":
    raise ValueError(f"ask: {cfg.strategy!r} annotates whole clusters; use round_fn.")
  candidates = state.selectable & ~state.labeled
  select_key = _round_key(state.key, state.round, _SELECT)
  if strategy.kind == "pool":
    return _ask_pool(state, pool, model, cfg, strategy, candidates, select_key)
  if strategy.score is None:
    return strategy.select(select_key, None, candidates, cfg.query_size)
  x, mask, subset = pool.x, candidates, None
  if cfg.pool_subset:
    subset = strategies.random_select(_round_key(state.key, state.round, _SUBSET), candidates,
                                      cfg.pool_subset)
    x, mask = pool.x[subset], jnp.ones(cfg.pool_subset, bool)
  scores = _pool_scores(state, x, model, cfg, strategy)
  if strategy.needs_features:
    picked = clustering.hybrid_select(select_key, scores, pool_features(model, state.variables, x,
                                                                        cfg),
                                      mask, cfg.query_size, cfg.alpha, cfg.n_clusters,
                                      balanced=strategy.kind == "hybrid_balanced")
  else:
    picked = strategy.select(select_key, scores, mask, cfg.query_size)
  return picked if subset is None else subset[picked]


def _label(state: ALState, indices: jax.Array, labels: jax.Array, valid: jax.Array) -> ALState:
  """Marks `indices` where `valid` labeled with `labels`; invalid entries are dropped (scattered
  out of bounds), so they change nothing."""
  target = jnp.where(valid, indices, state.labeled.shape[0])
  return state.replace(
      labeled=state.labeled.at[target].set(True, mode="drop"),
      labels=state.labels.at[target].set(labels.astype(state.labels.dtype), mode="drop"))


# Answers that are not a class (`tell`'s labels, `tell_query`'s cluster answers).
SKIP = -1     # an image: not labeled, back in the pool (it may be asked again in a later round)
UNSURE = -2   # an image: not labeled and no longer selectable (the person could not decide)
DECLINE = -1  # a cluster: not labeled


def _answer_images(state: ALState, indices: jax.Array, labels: jax.Array) -> tuple[ALState,
                                                                                  jax.Array]:
  """Labels `indices` [K] where `labels` [K] is a class (>= 0); SKIP leaves an item as it was,
  UNSURE also makes it unselectable; indices < 0 (no candidate) are ignored. Returns (state, the
  number of items labeled)."""
  n = state.labeled.shape[0]
  answered = (labels >= 0) & (indices >= 0)
  unsure = (labels == UNSURE) & (indices >= 0)
  state = _label(state, indices, labels, answered)
  state = state.replace(selectable=state.selectable.at[jnp.where(unsure, indices, n)].set(
      False, mode="drop"))
  return state, jnp.sum(answered).astype(state.interactions.dtype)


def tell(state: ALState, indices: jax.Array, labels: jax.Array,
         interactions: jax.Array | int | None = None) -> ALState:
  """Records the answers and closes the round: marks `indices` [K] labeled with `labels` [K] and
  adds the interactions spent (one per labeled image unless given).

  A label may also be `SKIP` (the item stays unlabeled and returns to the pool) or `UNSURE` (the
  item stays unlabeled and is no longer selectable, so it is not asked again); indices < 0 are
  ignored. The simulated oracle always answers a class."""
  state, labeled = _answer_images(state, indices, labels)
  spent = labeled if interactions is None else interactions
  return state.replace(round=state.round + 1, interactions=state.interactions + spent)


def cluster_round(state: ALState, pool: LabeledArrays, *, model: nn.Module, cfg: RoundConfig):
  """Cluster-based annotation after training: k-means over the unlabeled pool's features; the
  simulated expert is shown `cfg.clusters_per_round` random clusters and labels each whole cluster
  with its modal class when that class reaches `cfg.purity`; K single images are labeled by the
  oracle before (`<score>+cluster`) or after (`cluster+<score>`) the clusters, or none (`cluster`).
  Every cluster shown and every image labeled is one interaction. Cluster labels are used for
  training even when wrong.

  Returns (next state, metrics: selected int32 [K] (-1 where no candidate was left),
  cluster_labeled, cluster_label_accuracy, clusters_shown, clusters_accepted)."""
  strategy = strategies.get_strategy(cfg.strategy, cfg.hybrid_score)
  candidates = state.selectable & ~state.labeled
  features = pool_features(model, state.variables, pool.x, cfg)
  res = km.kmeans(_round_key(state.key, state.round, _KMEANS), features, cfg.num_clusters,
                  mask=candidates, chunk=cfg.train.eval_batch_size)
  scores = (_pool_scores(state, pool.x, model, cfg, strategy) if strategy.score is not None
            else None)
  k = cfg.query_size

  def images(st):
    cand = st.selectable & ~st.labeled
    if strategy.images == "none":
      return st, jnp.full((k,), -1, jnp.int32)
    idx = (strategy.select(_round_key(st.key, st.round, _SELECT), scores, cand, k))
    valid = cand[idx]
    answers = oracles.simulated_oracle(pool.y, idx)
    st = _label(st, idx, answers, valid)
    return st.replace(interactions=st.interactions + jnp.sum(valid)), jnp.where(valid, idx, -1)

  def clusters(st):
    shown = clustering.show_clusters(_round_key(st.key, st.round, _SHOW), res.assignment,
                                     cfg.num_clusters, cfg.clusters_per_round)
    accepted, modal, _ = clustering.cluster_expert(pool.y, res.assignment, shown,
                                                   cfg.num_clusters, cfg.num_classes, cfg.purity)
    member = res.assignment >= 0
    cid = jnp.where(member, res.assignment, 0)
    newly = member & accepted[cid] & ~st.labeled
    proposed = modal[cid]
    st = st.replace(labeled=st.labeled | newly, labels=jnp.where(newly, proposed, st.labels),
                    interactions=st.interactions + jnp.sum(shown))
    n_new = jnp.sum(newly)
    stats = {"cluster_labeled": n_new,
             "cluster_label_accuracy": jnp.where(
                 n_new > 0, jnp.sum(newly & (proposed == pool.y)) / jnp.maximum(n_new, 1), jnp.nan),
             "clusters_shown": jnp.sum(shown), "clusters_accepted": jnp.sum(accepted)}
    return st, stats

  if strategy.clusters_first:
    state, stats = clusters(state)
    state, selected = images(state)
  else:
    state, selected = images(state)
    state, stats = clusters(state)
  return state.replace(round=state.round + 1), {"selected": selected, **stats}


MONTAGE_SIZE = 64  # members of a cluster shown to a person, at most
_MEMBERS = 8  # key stream: which members of a large cluster are shown


@struct.dataclass
class Query:
  """What one round asks a person: K single images and/or whole clusters to review.

  Attributes:
    indices: int32 [K] pool indices of the images to label (-1: no candidate was left); shape [0]
      for the strategy `cluster`, which shows clusters only.
    clusters: int32 [Q] ids of the clusters to review (-1: fewer non-empty clusters than Q);
      Q = `cfg.clusters_per_round` for cluster strategies, 0 for the others.
    sizes: int32 [Q] members of each cluster.
    members: int32 [Q, M] pool indices of up to M = min(MONTAGE_SIZE, N) members of each cluster (a
      random sample of a larger cluster; -1 pads).
    proposed: int32 [Q] the class the model predicts most often among a cluster's members.
    assignment: int32 [N] the cluster of every pool item (-1: in none): answering a cluster labels
      all its members, shown or not, as the simulated cluster expert does. Shape [0] without
      clusters.
  """
  indices: jax.Array
  clusters: jax.Array
  sizes: jax.Array
  members: jax.Array
  proposed: jax.Array
  assignment: jax.Array


def ask_query(state: ALState, pool: LabeledArrays, *, model: nn.Module,
              cfg: RoundConfig) -> Query:
  """The round's question for a person, after `train_and_evaluate`: `ask`'s K images, or for
  cluster strategies the clusters that `cluster_round` would show its simulated expert (same
  k-means, same keys) plus, for `<score>+cluster`, the K images it would label first. Jittable.

  `cluster+<score>` chooses its images after the clusters are labeled, so it needs the answers
  first; it raises ValueError here."""
  strategy = strategies.get_strategy(cfg.strategy, cfg.hybrid_score)
  none = jnp.zeros((0,), jnp.int32)
  if strategy.kind != "cluster":
    return Query(indices=ask(state, pool, model=model, cfg=cfg), clusters=none, sizes=none,
                 members=jnp.zeros((0, min(MONTAGE_SIZE, pool.x.shape[0])), jnp.int32),
                 proposed=none, assignment=none)
  if strategy.clusters_first and strategy.images != "none":
    raise ValueError(f"ask_query: {cfg.strategy!r} chooses its images after the clusters are "
                     "answered; a person can answer 'cluster' and '<score>+cluster' rounds.")
  candidates = state.selectable & ~state.labeled
  features = pool_features(model, state.variables, pool.x, cfg)
  res = km.kmeans(_round_key(state.key, state.round, _KMEANS), features, cfg.num_clusters,
                  mask=candidates, chunk=cfg.train.eval_batch_size)
  if strategy.images == "none":
    indices = none
  else:
    scores = (_pool_scores(state, pool.x, model, cfg, strategy) if strategy.score is not None
              else None)
    idx = strategy.select(_round_key(state.key, state.round, _SELECT), scores, candidates,
                          cfg.query_size)
    indices = jnp.where(candidates[idx], idx, -1)
  shown = clustering.show_clusters(_round_key(state.key, state.round, _SHOW), res.assignment,
                                   cfg.num_clusters, cfg.clusters_per_round)
  clusters = jnp.nonzero(shown, size=cfg.clusters_per_round, fill_value=-1)[0].astype(jnp.int32)
  member = res.assignment >= 0
  seg = jnp.where(member, res.assignment, 0)
  sizes = jax.ops.segment_sum(member.astype(jnp.int32), seg, num_segments=cfg.num_clusters)
  pred = training.apply_in_chunks(
      lambda xb: jnp.argmax(scoring.mean_probs(model, state.variables, xb, cfg.uncertainty), -1),
      pool.x, cfg.train.eval_batch_size)
  votes = jax.ops.segment_sum(jax.nn.one_hot(pred, cfg.num_classes, dtype=jnp.int32)
                              * member[:, None], seg, num_segments=cfg.num_clusters)
  valid = clusters >= 0
  m = min(MONTAGE_SIZE, pool.x.shape[0])

  def sample(key, c):
    inside = res.assignment == c
    pick = strategies.random_select(key, inside, m)
    return jnp.where(inside[pick], pick, -1).astype(jnp.int32)

  members = jax.vmap(sample)(
      jax.random.split(_round_key(state.key, state.round, _MEMBERS), cfg.clusters_per_round),
      jnp.where(valid, clusters, -2))
  cid = jnp.where(valid, clusters, 0)
  return Query(indices=indices, clusters=clusters, sizes=jnp.where(valid, sizes[cid], 0),
               members=members, proposed=jnp.argmax(votes[cid], axis=-1).astype(jnp.int32),
               assignment=res.assignment.astype(jnp.int32))


def tell_query(state: ALState, query: Query, image_labels: jax.Array,
               cluster_answers: jax.Array) -> tuple[ALState, jax.Array]:
  """Records a person's answers to `query` and closes the round (the human counterpart of the
  oracle + `tell` / `cluster_round`). Jittable.

  Args:
    image_labels: int [K] a class, `SKIP` or `UNSURE` per image of `query.indices` (see `tell`).
    cluster_answers: int [Q] per cluster of `query.clusters`: the class its members get (the
      proposed one or another), or `DECLINE`.
  The images are labeled first; then every member of an answered cluster that is still unlabeled
  and selectable gets the cluster's class. Interactions: one per image labeled, one per cluster
  reviewed (declined ones too).
  Returns (next state, bool [N] the items labeled through clusters; [0] without clusters)."""
  state, spent = _answer_images(state, query.indices, image_labels)
  by_cluster = jnp.zeros((0,), bool)
  if query.clusters.shape[0]:
    reviewed = query.clusters >= 0
    match = (query.assignment[:, None] == query.clusters[None, :]) & reviewed[None, :]
    label = jnp.max(jnp.where(match, cluster_answers[None, :], DECLINE), axis=1)
    by_cluster = (label >= 0) & ~state.labeled & state.selectable
    state = state.replace(labeled=state.labeled | by_cluster,
                          labels=jnp.where(by_cluster, label, state.labels).astype(
                              state.labels.dtype))
    spent = spent + jnp.sum(reviewed).astype(spent.dtype)
  return state.replace(round=state.round + 1, interactions=state.interactions + spent), by_cluster


def round_fn(state: ALState, pool: LabeledArrays, test: LabeledArrays, *, model: nn.Module,
             tx: optax.GradientTransformation, cfg: RoundConfig):
  """One full round: train, evaluate, ask, the simulated oracle answers, tell (or, for cluster
  strategies, `cluster_round`).

  Returns (next state, metrics with "selected": int32 [K])."""
  state, metrics = train_and_evaluate(state, pool, test, model=model, tx=tx, cfg=cfg)
  if strategies.get_strategy(cfg.strategy, cfg.hybrid_score).kind == "cluster":
    state, extra = cluster_round(state, pool, model=model, cfg=cfg)
    return state, {**metrics, **extra}
  indices = ask(state, pool, model=model, cfg=cfg)
  answers = oracles.simulated_oracle(pool.y, indices,
                                     _round_key(state.key, state.round, _ORACLE))
  return tell(state, indices, answers), {**metrics, "selected": indices}


SEED_BATCHING = ("auto", "vmap", "map")


def over_seeds(fn: Callable, how: str) -> Callable:
  """Lifts `fn(state, pool, test)` to a leading seed axis of the state: `vmap` (seeds side by side
  in one batched program) or `map` (`lax.map`: one compiled loop over seeds, no batched weights).
  "auto" picks `map` on CPU, where XLA lowers convolutions with per-seed (batched) weights to grouped
  convolutions that ran 22x slower than two separate ones (BUILD_NOTES.md), and `vmap` elsewhere."""
  if how == "auto":
    how = "map" if jax.default_backend() == "cpu" else "vmap"
  if how == "vmap":
    return jax.vmap(fn, in_axes=(0, None, None))
  if how == "map":
    return lambda states, pool, test: jax.lax.map(lambda s: fn(s, pool, test), states)
  raise ValueError(f"seed_batching: unknown value {how!r}; accepted: {', '.join(SEED_BATCHING)}.")


def make_round_fns(model: nn.Module, tx: optax.GradientTransformation, cfg: RoundConfig,
                   seed_batching: str = "auto"):
  """Jitted round and final-evaluation functions over a leading seed axis of the state."""
  donate = (0,) if jax.default_backend() != "cpu" else ()
  step = jax.jit(over_seeds(functools.partial(round_fn, model=model, tx=tx, cfg=cfg),
                            seed_batching), donate_argnums=donate)
  final = jax.jit(over_seeds(functools.partial(train_and_evaluate, model=model, tx=tx, cfg=cfg),
                             seed_batching))
  return step, final


EXTRA_METRICS = ("cluster_labeled", "cluster_label_accuracy", "clusters_shown",
                 "clusters_accepted", "test_accuracy_mc")


def _json_scalar(v):
  v = np.asarray(v).item()
  return None if isinstance(v, float) and np.isnan(v) else v


def _json_number(v):
  """An int when the value is whole (one network), else a float (an ensemble's mean)."""
  v = float(np.asarray(v))
  return int(v) if v.is_integer() else v


def stack_states(states: Sequence[ALState]) -> ALState:
  return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def _record(records: list[dict], r: int, metrics: dict, index_map: np.ndarray,
            seconds: float) -> None:
  """Appends evaluation `r` of every seed (host metrics with a leading seed axis) to `records`."""
  for i, rec in enumerate(records):
    rec["rounds"].append({
        "round": r,
        "labels": int(metrics["labels"][i]),
        "interactions": int(metrics["interactions"][i]),
        "test_accuracy": float(metrics["test_accuracy"][i]),
        "test_ece": float(metrics["test_ece"][i]),
        "val_accuracy": _json_scalar(metrics["val_accuracy"][i]),   # None: no validation set
        "train_loss": float(metrics["train_loss"][i]),
        **{name: _json_number(metrics[name][i]) for name in ("best_epoch", "epochs_run")
           if name in metrics},
        "per_class_accuracy": [None if np.isnan(a) else float(a)
                               for a in metrics["per_class_accuracy"][i]],
        "selected": ([int(index_map[j]) for j in metrics["selected"][i] if j >= 0]
                     if "selected" in metrics else []),
        "seconds": seconds,
        **{name: _json_scalar(metrics[name][i]) for name in EXTRA_METRICS if name in metrics},
    })


def run(model: nn.Module, tx: optax.GradientTransformation, cfg: RoundConfig,
        pool: LabeledArrays, test: LabeledArrays, seeds: Sequence[int],
        splits: Sequence[Splits], rounds: int, train_index: np.ndarray | None = None,
        on_round: Callable[[dict], None] | None = None, fns=None,
        seed_batching: str = "auto", states: ALState | None = None,
        records: Sequence[dict] | None = None,
        on_state: Callable[[int, ALState, list[dict]], None] | None = None,
        stop: stopping.StopRules | None = None) -> list[dict]:
  """Runs `rounds` acquisition rounds for all seeds in one program (see `over_seeds`), then a
  final training; optionally resumes from a checkpoint.

  Args:
    pool, test: device arrays; `pool.y` is the simulated oracle's ground truth.
    seeds, splits: one split per seed (validation and initial sets over the pool).
    rounds: number of acquisitions; results hold rounds + 1 evaluations.
    train_index: maps pool positions to the dataset's original training order (for `selected`).
    on_round: called with a summary dict after every round (progress printing).
    fns: optional `(step, final)` from `make_round_fns`, to reuse compiled functions.
    seed_batching: "vmap", "map" or "auto" (see `over_seeds`).
    states: optional stacked state [S, ...] to start from (a fresh `init_state` stack, or one
      restored from a checkpoint); default: freshly initialised.
    records: the per-seed records of the evaluations already done (as returned by this function);
      with s rounds recorded, the run resumes at round s and `states` must be the input of round s
      (`states.round == s`). The round keys are `fold_in(key, round)`, so a resumed run computes
      exactly what an uninterrupted one would.
    on_state: called as `on_state(s, states, records)` after evaluation s - 1 is recorded, before
      `on_round` (so a progress line means the checkpoint is written); `states` is the input of
      round s.
    stop: stopping rules (`jaxal.stopping`), checked after every acquisition round; when a rule
      has fired for every seed the run trains once more on the labels acquired so far (the final
      evaluation) and ends early, and each record gets "stopped": {"rule", "round"}. The rules
      on the stop set need `cfg.stop_set` > 0. (After a resume, agreement streaks restart.)
  Returns:
    one dict per seed: {"seed", "rounds": [{"round", "labels", "interactions", "test_accuracy",
    "per_class_accuracy", "val_accuracy", "train_loss", "selected", "seconds"}]}.
  """
  y_np = np.asarray(pool.y)
  scoring.check_method(model, cfg.uncertainty)
  if states is None:
    states = stack_states([init_state(s, sp, y_np, model, tx, pool.x, cfg.members)
                           for s, sp in zip(seeds, splits)])
  if records is None:
    records = [{"seed": int(s), "rounds": []} for s in seeds]
  else:
    records = [{**rec, "rounds": list(rec["rounds"])} for rec in records]
  done = {len(rec["rounds"]) for rec in records}
  if [rec["seed"] for rec in records] != [int(s) for s in seeds] or len(done) != 1:
    raise ValueError(f"records are for seeds {[rec['seed'] for rec in records]} with "
                     f"{sorted(done)} rounds; expected seeds {list(seeds)} with one count.")
  start = done.pop()
  if start <= rounds and not bool(jnp.all(states.round == start)):
    raise ValueError(f"resuming at round {start} needs states at round {start}, got "
                     f"{np.asarray(states.round).tolist()}.")
  if stop is not None and stop.needs_stop_set and not cfg.stop_set:
    raise ValueError("--stop_min_uncertainty / --stop_agreement need a stop set: set "
                     "--stop_set to a positive size.")
  tracker = stopping.StopTracker(stop, len(records)) if stop is not None and stop.active else None
  step, final = fns or make_round_fns(model, tx, cfg, seed_batching)
  index_map = np.arange(len(y_np)) if train_index is None else np.asarray(train_index)
  # Resumed after a stop fired (the records say so) but before its final evaluation: do it now.
  stopped = bool(records) and all(rec.get("stopped") for rec in records)
  if stopped and tracker is not None:
    tracker.fired = [rec["stopped"] for rec in records]
  for r in range(start, rounds + 1):
    t0 = time.perf_counter()
    if r < rounds and not stopped:
      states, metrics = step(states, pool, test)
    else:
      states, metrics = final(states, pool, test)
    metrics = jax.device_get(metrics)
    seconds = time.perf_counter() - t0
    _record(records, r, metrics, index_map, seconds)
    last = stopped or r == rounds
    if tracker is not None and not last:
      labels, spent = jax.device_get((jnp.sum(states.labeled, axis=-1), states.interactions))
      stopped = tracker.update(r, labels, spent, metrics.get("stop_uncertainty"),
                               metrics.get("stop_predictions"))
      if stopped:   # in the records before the checkpoint, so a resume goes straight to the final
        for rec, fired in zip(records, tracker.fired):
          rec["stopped"] = fired
    if last and tracker is not None and not stopped:
      for rec, fired in zip(records, tracker.fired):   # rules that fired for some seeds only
        if fired is not None:
          rec["stop_fired"] = fired
    if on_state is not None:
      on_state(r + 1, states, records)
    if on_round is not None:
      on_round({"strategy": cfg.strategy, "round": r, "labels": int(metrics["labels"][0]),
                "test_accuracy": float(np.mean(metrics["test_accuracy"])), "seconds": seconds,
                "first": r == start,
                **({"stopped": tracker.fired} if last and tracker and stopped else {})})
    if last:
      break
  return records


def make_scanned_fn(model: nn.Module, tx: optax.GradientTransformation, cfg: RoundConfig,
                    rounds: int, seed_batching: str = "auto"):
  """One jitted program for a whole run: `lax.scan` of `round_fn` over `rounds` rounds, then the
  final training and evaluation, all seeds together (see `over_seeds`). Called as
  `fn(states, pool, test) -> (states, round_metrics [rounds, seeds, ...], final_metrics [seeds, ...])`.
  The input state buffers are donated on accelerators."""
  step = over_seeds(functools.partial(round_fn, model=model, tx=tx, cfg=cfg), seed_batching)
  final = over_seeds(functools.partial(train_and_evaluate, model=model, tx=tx, cfg=cfg),
                     seed_batching)

  def program(states, pool, test):
    states, per_round = jax.lax.scan(lambda st, _: step(st, pool, test), states, None,
                                     length=rounds)
    states, last = final(states, pool, test)
    return states, per_round, last

  donate = (0,) if jax.default_backend() != "cpu" else ()
  return jax.jit(program, donate_argnums=donate)


def run_scanned(model: nn.Module, tx: optax.GradientTransformation, cfg: RoundConfig,
                pool: LabeledArrays, test: LabeledArrays, seeds: Sequence[int],
                splits: Sequence[Splits], rounds: int, train_index: np.ndarray | None = None,
                fn=None, seed_batching: str = "auto",
                states: ALState | None = None) -> list[dict]:
  """`run` without checkpoints or progress: every round of every seed in one compiled program
  (`make_scanned_fn`), with no host round trip until the end. Same keys, so the same selections and
  (up to floating-point reassociation) the same accuracies as `run`. Each record's "seconds" is the
  run's wall time divided by its rounds + 1 evaluations; `fn` reuses a (compiled) `make_scanned_fn`.
  Returns records in `run`'s format."""
  y_np = np.asarray(pool.y)
  scoring.check_method(model, cfg.uncertainty)
  if states is None:
    states = stack_states([init_state(s, sp, y_np, model, tx, pool.x, cfg.members)
                           for s, sp in zip(seeds, splits)])
  if not bool(jnp.all(states.round == 0)):
    raise ValueError(f"run_scanned starts at round 0; the states are at rounds "
                     f"{np.asarray(states.round).tolist()} (resume with `run`).")
  fn = fn or make_scanned_fn(model, tx, cfg, rounds, seed_batching)
  t0 = time.perf_counter()
  _, per_round, last = jax.device_get(fn(states, pool, test))
  if per_round["labels"].shape[0] != rounds:
    raise ValueError(f"run_scanned: fn was built for {per_round['labels'].shape[0]} rounds, "
                     f"not rounds={rounds}.")
  seconds = (time.perf_counter() - t0) / (rounds + 1)
  records = [{"seed": int(s), "rounds": []} for s in seeds]
  index_map = np.arange(len(y_np)) if train_index is None else np.asarray(train_index)
  for r in range(rounds):
    _record(records, r, jax.tree.map(lambda a, r=r: a[r], per_round), index_map, seconds)
  _record(records, rounds, last, index_map, seconds)
  return records
