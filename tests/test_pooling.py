"""jaxal.models.pooling.max_pool against flax.linen.max_pool: the same values and gradients bit for
bit, with and without ties in a window, and the fallback."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.models.pooling import max_pool


@pytest.mark.parametrize("shape,window,padding", [
    ((3, 28, 28, 6), (2, 2), "VALID"),     # LeNet-5's first pooling
    ((2, 10, 10, 16), (2, 2), "VALID"),
    ((2, 8, 8, 4), (2, 2), "SAME"),        # even sizes: SAME does not pad
    ((2, 9, 6, 3), (3, 2), "VALID"),
])
def test_values_and_gradient_equal_flax_max_pool(shape, window, padding):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)     # no ties (continuous values)
  ours = lambda x: max_pool(x, window, window, padding)
  ref = lambda x: nn.max_pool(x, window, window, padding=padding)
  np.testing.assert_array_equal(jax.jit(ours)(x), jax.jit(ref)(x))
  ct = jax.random.normal(jax.random.PRNGKey(1), ref(x).shape)
  g_ours = jax.jit(jax.grad(lambda x: jnp.sum(ours(x) * ct)))(x)
  g_ref = jax.jit(jax.grad(lambda x: jnp.sum(ref(x) * ct)))(x)
  np.testing.assert_array_equal(g_ours, g_ref)


def test_tied_windows_give_their_gradient_to_the_first_maximum_as_flax_does():
  # a hand-worked window with two tied maxima: all of the gradient to the first in row-major order
  x = jnp.array([[1.0, 3.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(max_pool(x, (2, 2)), [[[[3.0]]]])
  g = jax.grad(lambda x: jnp.sum(max_pool(x, (2, 2))))(x).reshape(2, 2)
  np.testing.assert_array_equal(g, [[0.0, 1.0], [0.0, 0.0]])
  # images with flat regions (many ties, as after a convolution over a plain background)
  x = jnp.round(jax.random.uniform(jax.random.PRNGKey(3), (2, 8, 6, 3)) * 2.0)
  ct = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 3, 3))
  g_ours = jax.grad(lambda x: jnp.sum(max_pool(x, (2, 2)) * ct))(x)
  g_ref = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), (2, 2)) * ct))(x)
  np.testing.assert_array_equal(g_ours, g_ref)


def test_windows_that_do_not_tile_fall_back_to_flax():
  x = jax.random.normal(jax.random.PRNGKey(2), (2, 7, 7, 3))
  for args in (((2, 2), (2, 2), "SAME"), ((2, 2), (2, 2), "VALID"), ((3, 3), (2, 2), "VALID")):
    np.testing.assert_array_equal(max_pool(x, *args),
                                  nn.max_pool(x, args[0], args[1], padding=args[2]))
