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


def expected_calibration_error(probs: jax.Array, y: jax.Array, num_bins: int = 15) -> jax.Array:
  """Expected calibration error (Naeini, Cooper & Hauskrecht 2015; Guo, Pleiss, Sun & Weinberger
  2017): with confidence = max_c p_c and prediction = argmax_c p_c, items are put into `num_bins`
  equal-width confidence bins (lo, hi] over [0, 1] (confidence 0 into the first), and

      ECE = sum_b (n_b / N) |accuracy_b - mean confidence_b|.

  Args:
    probs: float [N, C] predictive distribution.
    y: int [N] true labels.
    num_bins: static number of bins (15 as in Guo et al.).
  Returns:
    float32 scalar in [0, 1].
  """
  probs = jnp.asarray(probs, jnp.float32)
  conf = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == y).astype(jnp.float32)
  b = jnp.clip(jnp.ceil(conf * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  gap = jax.ops.segment_sum(correct - conf, b, num_segments=num_bins)
  return jnp.sum(jnp.abs(gap)) / conf.shape[0]


ece = expected_calibration_error
