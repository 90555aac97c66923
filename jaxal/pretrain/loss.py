"""The SimCLR contrastive loss (NT-Xent: normalised temperature-scaled cross-entropy).

Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, eq. 1: the two views of item i are each other's positive; the other
2B - 2 views of the batch are the negatives.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.5) -> jax.Array:
  """Mean NT-Xent over the 2B anchors of a batch of two views.

  Args:
    z1, z2: [B, D] projections of the first and second views (row i of each: the same item).
    temperature: tau > 0, the softmax temperature of the cosine similarities.
  Returns:
    A scalar: mean over anchors a of -log(exp(s(a, a+) / tau) / sum_{b != a} exp(s(a, b) / tau)),
    s the cosine similarity.
  """
  z = jnp.concatenate([z1, z2], axis=0).astype(jnp.float32)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-12)
  n = z.shape[0]
  logits = (z @ z.T) / temperature
  logits = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logits)
  positive = (jnp.arange(n) + n // 2) % n
  log_prob = logits[jnp.arange(n), positive] - jax.nn.logsumexp(logits, axis=1)
  return -jnp.mean(log_prob)


__all__ = ["nt_xent"]
