"""Classification metrics as pure functions of predictions and labels."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def accuracy(pred: jax.Array, y: jax.Array) -> jax.Array:
  """Fraction of `pred` [N] equal to `y` [N]."""
  return jnp.mean((pred == y).astype(jnp.float32))


def per_class_accuracy(pred: jax.Array, y: jax.Array, num_classes: int) -> jax.Array:
  """Recall of every class: float32 [C], NaN for a class with no item in `y`."""
  correct = jax.ops.segment_sum((pred == y).astype(jnp.float32), y, num_segments=num_classes)
  count = jax.ops.segment_sum(jnp.ones_like(y, jnp.float32), y, num_segments=num_classes)
  return jnp.where(count > 0, correct / jnp.maximum(count, 1.0), jnp.nan)
