"""jaxal's Dropout (bit-packed Bernoulli masks) against the probabilities it must have: each unit
kept with probability exactly 1 - rate, units independent (also within one packed random word),
kept units scaled by 1 / (1 - rate) as flax.linen.Dropout does."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.models.dropout import Dropout, bits_per_unit, keep_mask


@pytest.mark.parametrize("rate,bits", [(0.5, 1), (0.25, 2), (0.75, 2), (0.125, 4), (0.0625, 4),
                                       (3 / 256, 8), (0.3, None), (0.1, None)])
def test_bits_per_unit(rate, bits):
  assert bits_per_unit(rate) == bits


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.125, 3 / 256, 0.3])
def test_keep_mask_has_the_asked_probability_and_independent_units(rate):
  n = 1_000_003                                   # not a multiple of the units per word
  m = np.asarray(keep_mask(jax.random.PRNGKey(0), rate, (n,)))
  keep = 1 - rate
  sigma = np.sqrt(keep * (1 - keep) / n)
  assert abs(m.mean() - keep) < 5 * sigma
  # neighbours (mostly in the same 32-bit word) and units one word apart are independent
  for lag in (1, 32 // (bits_per_unit(rate) or 32), 33):
    both = np.mean(m[:-lag] & m[lag:])
    assert abs(both - keep ** 2) < 5 * np.sqrt(keep ** 2 * (1 - keep ** 2) / (n - lag))


def test_keep_mask_shape_and_keys():
  a = keep_mask(jax.random.PRNGKey(1), 0.5, (3, 5, 7))
  assert a.shape == (3, 5, 7) and a.dtype == jnp.bool_
  np.testing.assert_array_equal(a, keep_mask(jax.random.PRNGKey(1), 0.5, (3, 5, 7)))
  assert not np.array_equal(a, keep_mask(jax.random.PRNGKey(2), 0.5, (3, 5, 7)))


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_dropout_scales_kept_units_like_flax(rate):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 50)).astype(np.float32)) + 3.0
  rngs = {"dropout": jax.random.PRNGKey(3)}
  ours = np.asarray(Dropout(rate).apply({}, x, deterministic=False, rngs=rngs))
  flax = np.asarray(nn.Dropout(rate).apply({}, x, deterministic=False, rngs=rngs))
  for out in (ours, flax):
    kept = out != 0
    np.testing.assert_allclose(out[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)
  if rate == 0.3:   # not a multiple of 1/2^b: the same bernoulli draw as flax, bit for bit
    np.testing.assert_array_equal(ours, flax)
  # the same random function: the kept share agrees with flax's within sampling error
  assert abs((ours != 0).mean() - (flax != 0).mean()) < 5 * np.sqrt(2 * rate * (1 - rate) / x.size)


def test_dropout_off_and_extreme_rates():
  x = jnp.ones((4, 6))
  rngs = {"dropout": jax.random.PRNGKey(0)}
  np.testing.assert_array_equal(Dropout(0.5).apply({}, x, deterministic=True), x)
  np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rngs=rngs), x)
  np.testing.assert_array_equal(Dropout(1.0).apply({}, x, deterministic=False, rngs=rngs), 0 * x)
