"""Dropout whose masks cost a few random bits per unit instead of a random float.

`flax.linen.Dropout` draws one uniform float (32 random bits from the PRNG) per unit. MC-dropout
scoring draws S masks for every pool item (S x N x units: 245 million for BALD with S = 20 over a
60,000-image pool with LeNet-5), and on a CPU generating those bits takes about as long as the
network's whole trunk. When the rate is a multiple of 1/2^b for b in (1, 2, 4, 8), a unit is kept
exactly with probability 1 - rate from b random bits: an unsigned b-bit value u is uniform on
[0, 2^b), and P(u >= rate * 2^b) = 1 - rate. One 32-bit word then serves 32 / b units (rate 0.5:
32 units per word, 32x fewer random bits). Other rates fall back to `jax.random.bernoulli`, as flax
does. Kept units are scaled by 1 / (1 - rate), as in `flax.linen.Dropout`: the layer is the same
random function, drawn from a different random stream.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

WIDTHS = (1, 2, 4, 8)


def bits_per_unit(rate: float) -> int | None:
  """The smallest b in `WIDTHS` with rate * 2^b an integer, or None (the float path)."""
  for b in WIDTHS:
    k = rate * (1 << b)
    if abs(k - round(k)) < 1e-9:
      return b
  return None


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
  """bool `shape`, each entry True independently with probability exactly 1 - `rate`."""
  b = bits_per_unit(rate)
  if b is None:
    return jax.random.bernoulli(key, 1.0 - rate, shape)
  size = math.prod(shape)
  per_word = 32 // b
  words = jax.random.bits(key, (-(-size // per_word),), jnp.uint32)
  shifts = jnp.arange(per_word, dtype=jnp.uint32) * jnp.uint32(b)
  values = (words[:, None] >> shifts) & jnp.uint32((1 << b) - 1)        # [words, per_word]
  threshold = jnp.uint32(round(rate * (1 << b)))
  return (values.reshape(-1)[:size] >= threshold).reshape(shape)


class Dropout(nn.Module):
  """Drop-in for `flax.linen.Dropout(rate)(x, deterministic=...)`, drawing its mask with
  `keep_mask` from the "dropout" rng stream."""
  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate == 1.0:
      return jnp.zeros_like(x)
    keep = keep_mask(self.make_rng("dropout"), self.rate, x.shape)
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))
