"""Stochastic power acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal
2023, "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning", TMLR): K
candidates drawn without replacement with probability proportional to score^beta (Gumbel-top-k).

Pure and jittable with a static K.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxal.kmeans import _static_int  # pylint: disable=protected-access
from jaxal.selection.primitives import top_k

_TINY = float(jnp.finfo(jnp.float32).tiny)


def power_select(key: jax.Array, scores: jax.Array, candidates: jax.Array, k: int,
                 beta: float = 1.0) -> jax.Array:
  """Power acquisition (Kirsch et al. 2023): K candidates drawn without replacement with
  probability proportional to score^beta, via the Gumbel-top-k trick: the top K of
  beta * log(score) + Gumbel noise. `power_bald` uses BALD scores and `power_entropy` the predictive
  entropy; beta = 1 is the paper's default, beta -> inf recovers top-K.

  Args:
    scores: float [N], non-negative (small negative rounding errors count as 0; a score of 0 is
      drawn only after every positive one).
    candidates: bool [N].
    k: static batch size.
    beta: coldness, > 0.
  Returns:
    int32 [k] distinct candidate indices (while at least k candidates exist).
  """
  where = "power_select"
  k = _static_int(k, "k", where, 1)
  if not isinstance(beta, jax.core.Tracer) and not float(beta) > 0:
    raise ValueError(f"{where}: beta (--power_beta) must be > 0; got {beta}.")
  scores = jnp.asarray(scores, jnp.float32)
  gumbel = jax.random.gumbel(key, scores.shape, jnp.float32)
  return top_k(beta * jnp.log(jnp.maximum(scores, _TINY)) + gumbel, candidates, k)


__all__ = ["power_select"]
