"""Greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019, "BatchBALD: Efficient and Diverse Batch
Acquisition for Deep Bayesian Active Learning", NeurIPS): the batch that greedily maximises the
mutual information between the joint labels and the model parameters, from predictive samples.

Pure and jittable with a static K; nothing of size N x N is built.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import argmax_free, chunked_map


def _xlogx(p: jax.Array) -> jax.Array:
  """p log p with 0 log 0 = 0."""
  return jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)


# ---------------------------------------------------------------------------------------------
# Joint entropy of the chosen labels together with each candidate's label

def exact_configurations(num_classes: int, max_configs: int, k: int) -> int:
  """How many chosen points the exact table holds: the largest b <= k - 1 with C^b <= max_configs."""
  b = 0
  while b < k - 1 and num_classes ** (b + 1) <= max_configs:
    b += 1
  return b


def empty_table(num_configs: int, num_samples: int) -> jax.Array:
  """The exact table of an empty chosen set: one configuration (row 0) of probability 1 under every
  sample; the other rows (configurations with a nonzero digit) have probability 0."""
  return jnp.zeros((num_configs, num_samples), jnp.float32).at[0].set(1.0)


def add_exact(table: jax.Array, probs: jax.Array, b: jax.Array | int) -> jax.Array:
  """Adds the label of a new point as digit `b` of the configuration index.

  Args:
    table: [M, S] with table[m, s] = p(y_chosen = config m | sample s), where configuration m gives
      the j-th chosen point the class (m // C^j) % C; rows with a nonzero digit >= b are 0.
    probs: [S, C] the new point's class probabilities under each sample.
    b: the number of points already in the table (may be traced); C^(b+1) <= M.
  Returns:
    the table over the b + 1 points, [M, S].
  """
  m, _ = table.shape
  c = probs.shape[-1]
  rows = jnp.arange(m)
  place = jnp.asarray(c, jnp.int32) ** jnp.asarray(b, jnp.int32)
  digit = (rows // place) % c
  return table[rows - digit * place] * probs.T[digit]


def exact_joint_entropies(table: jax.Array, samples: jax.Array, chunk: int = 256) -> jax.Array:
  """H(y_chosen, y_n) for every point n by enumerating the chosen set's configurations.

  Args:
    table: [M, S] exact configuration table (`empty_table`, `add_exact`).
    samples: [N, S, C] class probabilities of every point under every sample.
  Returns:
    float32 [N]. Cost O(N M S C), memory O(chunk M C).
  """
  s = table.shape[1]

  def block(p):  # p [B, S, C]
    joint = jnp.einsum("ms,bsc->bmc", table, p, precision=lax.Precision.HIGHEST) / s
    return -jnp.sum(_xlogx(joint), axis=(1, 2))

  return chunked_map(block, (samples,), chunk)


def sample_table(key: jax.Array, table: jax.Array, num_configs: int) -> tuple[jax.Array, jax.Array,
                                                                            jax.Array]:
  """Draws `num_configs` configurations of the chosen labels from their joint predictive
  distribution, stratified over samples as Kirsch et al. do: configuration m is drawn under sample
  s_m = m mod S from the exact table's column s_m.

  Returns (P [num_configs, S] probabilities of each drawn configuration under every sample, divided
  by the row's maximum; log_scale [num_configs], the logarithm of that maximum; owner int32
  [num_configs], the sample s_m each configuration was drawn under)."""
  s = table.shape[1]
  owner = (jnp.arange(num_configs) % s).astype(jnp.int32)
  logits = jnp.log(jnp.maximum(table, 0.0)).T  # [S, M]; -inf where impossible
  rows = jax.random.categorical(key, logits[owner], axis=-1)  # [num_configs]
  return _rescale(table[rows], jnp.zeros((num_configs,), jnp.float32), owner)


def _rescale(p: jax.Array, log_scale: jax.Array, owner: jax.Array):
  top = jnp.max(p, axis=1)
  top = jnp.where(top > 0, top, 1.0)
  return p / top[:, None], log_scale + jnp.log(top), owner


def add_sampled(key: jax.Array, p: jax.Array, log_scale: jax.Array, owner: jax.Array,
                probs: jax.Array):
  """Extends every sampled configuration with a label for a new point, drawn under the
  configuration's own sample (so the extended configurations are again draws from the joint), and
  multiplies in the new point's probabilities. `probs`: [S, C]. Returns (P, log_scale, owner)."""
  label = jax.random.categorical(key, jnp.log(jnp.maximum(probs[owner], 0.0)), axis=-1)  # [M]
  return _rescale(p * probs[:, label].T, log_scale, owner)


def sampled_joint_entropies(p: jax.Array, log_scale: jax.Array, samples: jax.Array,
                            chunk: int = 256) -> jax.Array:
  """Importance-sampled H(y_chosen, y_n) for every point n (Kirsch et al. 2019, eq. 12-13):

      H ~= -1/M sum_m sum_c p(ŷ_m, y_n = c) / p(ŷ_m) * log p(ŷ_m, y_n = c)

  with p(ŷ_m, y_n = c) = 1/S sum_s p(ŷ_m | s) p(y_n = c | s) and p(ŷ_m) = 1/S sum_s p(ŷ_m | s),
  from the rescaled configuration probabilities `p` [M, S] and their log scales [M]. Returns
  float32 [N]."""
  m, s = p.shape
  marginal = jnp.mean(p, axis=1)  # [M] (scaled), > 0 for drawn configurations
  inv = jnp.where(marginal > 0, 1.0 / jnp.where(marginal > 0, marginal, 1.0), 0.0)

  def block(q):  # q [B, S, C]
    joint = jnp.einsum("ms,bsc->bmc", p, q, precision=lax.Precision.HIGHEST) / s
    log_joint = jnp.log(jnp.where(joint > 0, joint, 1.0)) + log_scale[None, :, None]
    terms = jnp.where(joint > 0, joint * log_joint, 0.0)
    return -jnp.sum(terms * inv[None, :, None], axis=(1, 2)) / m

  return chunked_map(block, (samples,), chunk)


# ---------------------------------------------------------------------------------------------
# BatchBALD

def batchbald_select(key: jax.Array, samples: jax.Array, candidates: jax.Array, k: int,
                     num_configs: int = 1000, chunk: int = 256) -> jax.Array:
  """Greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019, Algorithm 1).

  Point b of the batch maximises the mutual information between the labels of the points chosen so
  far plus the candidate and the model parameters,

      a_b = argmax_n  H(y_1, ..., y_{b-1}, y_n) - sum_i E_w H(y_i | w),

  estimated from the S predictive samples (MC-dropout masks or ensemble members) as equally likely
  parameter draws. The joint entropy is exact, by enumerating all C^(b-1) label configurations of the
  chosen points, while C^(b-1) <= `num_configs`; beyond that it is estimated from `num_configs`
  configurations drawn from the joint (the paper's importance-sampled estimator), extended by one
  label per added point. The first point is the top BALD point.

  Args:
    key: PRNG key (used only once the configurations are sampled).
    samples: float [S, N, C] predictive samples of the pool.
    candidates: bool [N] the items that may be chosen.
    k: batch size (static).
    num_configs: M (static): the exact/sampled switch and the number of sampled configurations.
      Each greedy step costs O(N M S C) time and O(chunk M C) memory.
    chunk: candidate rows per block (static).
  Returns:
    int32 [k] distinct indices, in the order chosen (candidates only, while candidates remain).
  """
  where = "batchbald_select"
  k = _static_int(k, "k", where, 1)
  num_configs = _static_int(num_configs, "num_configs (--batchbald_configs)", where, 1)
  chunk = _static_int(chunk, "chunk", where, 1)
  samples = jnp.asarray(samples, jnp.float32)
  if samples.ndim != 3:
    raise ValueError(f"{where}: samples must be [S, N, C]; got shape {tuple(samples.shape)}.")
  s, n, c = samples.shape
  candidates = jnp.asarray(candidates, bool)
  if candidates.shape != (n,):
    raise ValueError(f"{where}: candidates must have shape [N] = ({n},); got "
                     f"{tuple(candidates.shape)}.")
  probs = jnp.transpose(samples, (1, 0, 2))  # [N, S, C]
  cond_entropy = -jnp.mean(jnp.sum(_xlogx(probs), axis=-1), axis=1)  # [N] E_w H(y_n | w)
  n_exact = exact_configurations(c, num_configs, k)
  chosen = jnp.zeros((k,), jnp.int32)
  taken = jnp.zeros((n,), bool)

  def pick(t, scores, chosen, taken):
    i = argmax_free(scores - cond_entropy, candidates & ~taken, taken)
    return chosen.at[t].set(i), taken.at[i].set(True)

  # Exact phase: picks 0 .. n_exact, the table holding the t points chosen before pick t.
  def exact_step(t, carry):
    table, chosen, taken = carry
    chosen, taken = pick(t, exact_joint_entropies(table, probs, chunk), chosen, taken)
    table = lax.cond(t < n_exact, lambda tb: add_exact(tb, probs[chosen[t]], t), lambda tb: tb,
                     table)
    return table, chosen, taken

  n_first = min(k, n_exact + 1)
  table, chosen, taken = lax.fori_loop(0, n_first, exact_step,
                                       (empty_table(c ** n_exact, s), chosen, taken))
  if k == n_first:
    return chosen

  # Sampled phase: configurations of the n_exact points drawn from the exact table, then extended
  # by one label per added point.
  draw_key, extend_key = jax.random.split(key)
  p, log_scale, owner = sample_table(draw_key, table, num_configs)

  def sampled_step(t, carry):
    p, log_scale, chosen, taken = carry
    p, log_scale, _ = add_sampled(jax.random.fold_in(extend_key, t), p, log_scale, owner,
                                  probs[chosen[t - 1]])
    chosen, taken = pick(t, sampled_joint_entropies(p, log_scale, probs, chunk), chosen, taken)
    return p, log_scale, chosen, taken

  _, _, chosen, _ = lax.fori_loop(n_first, k, sampled_step, (p, log_scale, chosen, taken))
  return chosen


__all__ = ["add_exact", "add_sampled", "batchbald_select", "empty_table", "exact_configurations",
           "exact_joint_entropies", "sample_table", "sampled_joint_entropies"]
