"""Oracles answer queries with labels. The simulated one reads the ground truth."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def simulated_oracle(y_true: jax.Array, indices: jax.Array, key: jax.Array | None = None,
                     noise_rate: float = 0.0, num_classes: int | None = None) -> jax.Array:
  """True labels of `indices` [K]; with `noise_rate` > 0 each answer is, with that probability,
  replaced by a uniformly drawn *different* class (needs `key` and `num_classes`)."""
  labels = y_true[indices]
  if noise_rate == 0.0:
    return labels
  if key is None or num_classes is None:
    raise ValueError("simulated_oracle: noise_rate > 0 needs key and num_classes.")
  k_flip, k_class = jax.random.split(key)
  flip = jax.random.uniform(k_flip, labels.shape) < noise_rate
  shift = jax.random.randint(k_class, labels.shape, 1, num_classes)
  return jnp.where(flip, (labels + shift) % num_classes, labels).astype(labels.dtype)
