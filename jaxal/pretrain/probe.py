"""The linear probe: multinomial logistic regression on frozen features, the usual measure of a
representation (the accuracy a linear classifier trained on every label reaches)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


@functools.partial(jax.jit, static_argnums=(2, 3))
def _fit(x, y, num_classes: int, steps: int, learning_rate, l2):
  w = jnp.zeros((x.shape[1], num_classes), jnp.float32)
  b = jnp.zeros((num_classes,), jnp.float32)
  tx = optax.adam(learning_rate)

  def loss(p):
    logits = x @ p[0] + p[1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + 0.5 * l2 * jnp.sum(p[0] ** 2)

  def step(carry, _):
    p, s = carry
    value, g = jax.value_and_grad(loss)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), value

  (p, _), losses = jax.lax.scan(step, ((w, b), tx.init((w, b))), None, length=steps)
  return p, losses


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, num_classes: int, steps: int = 1000,
                 learning_rate: float = 0.05, l2: float = 1e-4) -> dict:
  """Trains a linear softmax classifier on all of `x_train` [N, D] (standardised with its own
  statistics; full-batch Adam for `steps` steps, L2 `l2` on the weights) and returns
  {"train_accuracy", "test_accuracy", "final_loss"}."""
  x_train = np.asarray(x_train, np.float32)
  mean, std = x_train.mean(0), x_train.std(0)
  std = np.where(std > 0, std, 1.0)
  xs = jnp.asarray((x_train - mean) / std)
  xt = jnp.asarray((np.asarray(x_test, np.float32) - mean) / std)
  (w, b), losses = _fit(xs, jnp.asarray(y_train, jnp.int32), int(num_classes), int(steps),
                        float(learning_rate), float(l2))
  acc = lambda x, y: float(jnp.mean(jnp.argmax(x @ w + b, axis=1) == jnp.asarray(y)))
  return {"train_accuracy": acc(xs, y_train), "test_accuracy": acc(xt, y_test),
          "final_loss": float(losses[-1])}


__all__ = ["linear_probe"]
