"""Max pooling over non-overlapping windows as a reshape and a max, the same values and the same
gradient as `flax.linen.max_pool`, faster on XLA:CPU.

`nn.max_pool` is a `reduce_window`, whose gradient is a `select_and_scatter`: on XLA:CPU that is a
slow kernel inside the training loop. When the windows tile the input exactly (window = stride and
the spatial sizes divisible by it, which "SAME" padding then does not pad), the pooled value is the
max over two reshaped axes, bit for bit `nn.max_pool`'s. The gradient is written by hand (custom
VJP) to be `select_and_scatter`'s: all of a window's cotangent goes to its first maximum in
row-major window order, also when entries tie (they do on real images: a flat background gives
equal activations across a window, and autodiff of `max` would split the gradient between them,
which changes training). Any other window, stride or padding falls back to `nn.max_pool`.
Measured in BUILD_NOTES.md (issue 21).
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int] | None = None,
             padding: str = "VALID") -> jax.Array:
  """`flax.linen.max_pool(x, window, strides, padding)` for NHWC inputs (see the module docstring)."""
  window = tuple(window)
  strides = window if strides is None else tuple(strides)
  h, w = x.shape[-3], x.shape[-2]
  tiles = (len(window) == 2 and window == strides and isinstance(padding, str)
           and padding.upper() in ("VALID", "SAME") and h % window[0] == 0
           and w % window[1] == 0)
  if not tiles:
    return nn.max_pool(x, window, strides, padding=padding)
  return _tiled_max(x, window)


def _windows(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  """x [..., H, W, C] as [..., H/a, W/b, C, a*b], each window's entries in row-major order."""
  (a, b), lead, (h, w, c) = window, x.shape[:-3], x.shape[-3:]
  n = len(lead)
  t = x.reshape(lead + (h // a, a, w // b, b, c))
  return t.transpose(tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3)).reshape(
      lead + (h // a, w // b, c, a * b))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max(x: jax.Array, window: tuple[int, int]) -> jax.Array:
  (a, b), lead, (h, w, c) = window, x.shape[:-3], x.shape[-3:]
  return x.reshape(lead + (h // a, a, w // b, b, c)).max(axis=(-4, -2))


def _tiled_max_fwd(x, window):
  return _tiled_max(x, window), x


def _tiled_max_bwd(window, x, g):
  """select_and_scatter's rule: each window's cotangent to its first maximum (row-major)."""
  (a, b), lead, (h, w, c) = window, x.shape[:-3], x.shape[-3:]
  n = len(lead)
  first = jnp.argmax(_windows(x, window), axis=-1)                  # [..., H/a, W/b, C]
  spread = jax.nn.one_hot(first, a * b, dtype=g.dtype) * g[..., None]
  spread = spread.reshape(lead + (h // a, w // b, c, a, b))
  spread = spread.transpose(tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))
  return (spread.reshape(x.shape),)


_tiled_max.defvjp(_tiled_max_fwd, _tiled_max_bwd)
