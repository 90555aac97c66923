"""Answers into the state: `tell` for images, cluster annotation, and the question a person sees.

`tell(state, indices, labels)` closes a round: the answered items become labeled. A label may also
be `SKIP` (stays unlabeled, back in the pool) or `UNSURE` (stays unlabeled and is never asked
again). Cluster annotation (`strategies.ClusterAnnotation`) labels whole k-means clusters through
an expert: `cluster_round` with the simulated expert, `ask_query` / `tell_query` with a person (the
same k-means and keys, so a person who answers as the simulated expert would gets the same run).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxal import kmeans as km
from jaxal import scoring, training
from jaxal.acquisition import ask, pool_features, selection_inputs
from jaxal.selection.cluster import cluster_expert, show_clusters
from jaxal.selection.primitives import random_select
from jaxal.state import (ALState, KMEANS, LabeledArrays, MEMBERS, SELECT, SHOW, Uncertainty,
                         round_key)
from jaxal.strategies import ClusterAnnotation, Context, Strategy

# Answers that are not a class (`tell`'s labels, `tell_query`'s cluster answers).
SKIP = -1     # an image: not labeled, back in the pool (it may be asked again in a later round)
UNSURE = -2   # an image: not labeled and no longer selectable (the person could not decide)
DECLINE = -1  # a cluster: not labeled

MONTAGE_SIZE = 64  # members of a cluster shown to a person, at most


def label(state: ALState, indices: jax.Array, labels: jax.Array, valid: jax.Array) -> ALState:
  """Marks `indices` where `valid` labeled with `labels`; invalid entries are dropped (scattered
  out of bounds), so they change nothing."""
  target = jnp.where(valid, indices, state.labeled.shape[0])
  return state.replace(
      labeled=state.labeled.at[target].set(True, mode="drop"),
      labels=state.labels.at[target].set(labels.astype(state.labels.dtype), mode="drop"))


def answer_images(state: ALState, indices: jax.Array,
                  labels: jax.Array) -> tuple[ALState, jax.Array]:
  """Labels `indices` [K] where `labels` [K] is a class (>= 0); SKIP leaves an item as it was,
  UNSURE also makes it unselectable; indices < 0 (no candidate) are ignored. Returns (state, the
  number of items labeled)."""
  n = state.labeled.shape[0]
  answered = (labels >= 0) & (indices >= 0)
  unsure = (labels == UNSURE) & (indices >= 0)
  state = label(state, indices, labels, answered)
  state = state.replace(selectable=state.selectable.at[jnp.where(unsure, indices, n)].set(
      False, mode="drop"))
  return state, jnp.sum(answered).astype(state.interactions.dtype)


def tell(state: ALState, indices: jax.Array, labels: jax.Array,
         interactions: jax.Array | int | None = None) -> ALState:
  """Records the answers and closes the round: marks `indices` [K] labeled with `labels` [K] and
  adds the interactions spent (one per labeled image unless given). Labels may be SKIP or UNSURE
  (see the module docstring); indices < 0 are ignored."""
  state, labeled = answer_images(state, indices, labels)
  spent = labeled if interactions is None else interactions
  return state.replace(round=state.round + 1, interactions=state.interactions + spent)


def _clusters(state: ALState, pool: LabeledArrays, model: nn.Module, strategy: ClusterAnnotation,
              uncertainty: Uncertainty, context: Context):
  """(k-means result over the unlabeled pool's features, number of clusters)."""
  num_clusters = strategy.clusters(pool.x.shape[0] - state.val.shape[0])
  if strategy.clusters_per_round > num_clusters:
    raise ValueError(f"clusters_per_round={strategy.clusters_per_round} exceeds the "
                     f"{num_clusters} clusters (selectable pool / cluster_size).")
  candidates = state.selectable & ~state.labeled
  features = pool_features(model, state.variables, pool.x, uncertainty, context.chunk)
  res = km.kmeans(round_key(state.key, state.round, KMEANS), features, num_clusters,
                  mask=candidates, chunk=context.chunk)
  return res, num_clusters


def _image_inputs(state, pool, model, images: Strategy, uncertainty, context):
  return selection_inputs(state, model, pool.x, state.labeled, images, uncertainty, context)


def cluster_round(state: ALState, pool: LabeledArrays, *, model: nn.Module,
                  strategy: ClusterAnnotation, k: int, uncertainty: Uncertainty, context: Context):
  """Cluster-based annotation with the simulated expert (see `ClusterAnnotation`); cluster labels
  are used for training even when wrong.

  Returns (next state, metrics: selected int32 [K] (-1 where no candidate was left; [K] of -1
  without images), cluster_labeled, cluster_label_accuracy, clusters_shown, clusters_accepted)."""
  res, num_clusters = _clusters(state, pool, model, strategy, uncertainty, context)
  images = strategy.images
  inputs = (None if images is None
            else _image_inputs(state, pool, model, images, uncertainty, context))

  def label_images(st):
    if images is None:
      return st, jnp.full((k,), -1, jnp.int32)
    cand = st.selectable & ~st.labeled
    idx = images.select(round_key(st.key, st.round, SELECT), inputs.replace(labeled=st.labeled),
                        k, cand)
    valid = cand[idx]
    st = label(st, idx, pool.y[idx], valid)
    return st.replace(interactions=st.interactions + jnp.sum(valid)), jnp.where(valid, idx, -1)

  def label_clusters(st):
    shown = show_clusters(round_key(st.key, st.round, SHOW), res.assignment, num_clusters,
                          strategy.clusters_per_round)
    accepted, modal, _ = cluster_expert(pool.y, res.assignment, shown, num_clusters,
                                        context.num_classes, strategy.purity)
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

  if images is not None and not strategy.images_first:
    state, stats = label_clusters(state)
    state, selected = label_images(state)
  else:
    state, selected = label_images(state)
    state, stats = label_clusters(state)
  return state.replace(round=state.round + 1), {"selected": selected, **stats}


@struct.dataclass
class Query:
  """What one round asks a person: K single images and/or whole clusters to review.

  Attributes:
    indices: int32 [K] pool indices of the images to label (-1: no candidate was left); shape [0]
      for cluster annotation without images.
    clusters: int32 [Q] ids of the clusters to review (-1: fewer non-empty clusters than Q);
      Q = `clusters_per_round` for cluster annotation, 0 otherwise.
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
              strategy: Strategy | ClusterAnnotation, k: int, uncertainty: Uncertainty,
              context: Context, pool_subset: int = 0) -> Query:
  """The round's question for a person, after training: `ask`'s K images, or for cluster
  annotation the clusters `cluster_round` would show its simulated expert (same k-means, same keys)
  plus, with images first, the K images it would label first. Jittable.

  Cluster annotation with the images after the clusters needs the answers first: ValueError."""
  none = jnp.zeros((0,), jnp.int32)
  m = min(MONTAGE_SIZE, pool.x.shape[0])
  if isinstance(strategy, Strategy):
    return Query(indices=ask(state, pool, model=model, strategy=strategy, k=k,
                             uncertainty=uncertainty, context=context, pool_subset=pool_subset),
                 clusters=none, sizes=none, members=jnp.zeros((0, m), jnp.int32), proposed=none,
                 assignment=none)
  if strategy.images is not None and not strategy.images_first:
    raise ValueError(f"ask_query: {strategy.name!r} chooses its images after the clusters are "
                     "answered; a person can answer cluster annotation with images first or "
                     "without images.")
  candidates = state.selectable & ~state.labeled
  res, num_clusters = _clusters(state, pool, model, strategy, uncertainty, context)
  if strategy.images is None:
    indices = none
  else:
    inputs = _image_inputs(state, pool, model, strategy.images, uncertainty, context)
    idx = strategy.images.select(round_key(state.key, state.round, SELECT), inputs, k, candidates)
    indices = jnp.where(candidates[idx], idx, -1)
  shown = show_clusters(round_key(state.key, state.round, SHOW), res.assignment, num_clusters,
                        strategy.clusters_per_round)
  clusters = jnp.nonzero(shown, size=strategy.clusters_per_round, fill_value=-1)[0].astype(
      jnp.int32)
  member = res.assignment >= 0
  seg = jnp.where(member, res.assignment, 0)
  sizes = jax.ops.segment_sum(member.astype(jnp.int32), seg, num_segments=num_clusters)
  pred = training.apply_in_chunks(
      lambda xb: jnp.argmax(scoring.mean_probs(model, state.variables, xb, uncertainty.method), -1),
      pool.x, context.chunk)
  votes = jax.ops.segment_sum(jax.nn.one_hot(pred, context.num_classes, dtype=jnp.int32)
                              * member[:, None], seg, num_segments=num_clusters)
  valid = clusters >= 0

  def sample(key, c):
    inside = res.assignment == c
    pick = random_select(key, inside, m)
    return jnp.where(inside[pick], pick, -1).astype(jnp.int32)

  members = jax.vmap(sample)(
      jax.random.split(round_key(state.key, state.round, MEMBERS), strategy.clusters_per_round),
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
  state, spent = answer_images(state, query.indices, image_labels)
  by_cluster = jnp.zeros((0,), bool)
  if query.clusters.shape[0]:
    reviewed = query.clusters >= 0
    match = (query.assignment[:, None] == query.clusters[None, :]) & reviewed[None, :]
    answer = jnp.max(jnp.where(match, cluster_answers[None, :], DECLINE), axis=1)
    by_cluster = (answer >= 0) & ~state.labeled & state.selectable
    state = state.replace(labeled=state.labeled | by_cluster,
                          labels=jnp.where(by_cluster, answer, state.labels).astype(
                              state.labels.dtype))
    spent = spent + jnp.sum(reviewed).astype(spent.dtype)
  return state.replace(round=state.round + 1, interactions=state.interactions + spent), by_cluster
