"""SimCLR's stochastic views of a batch of images, as pure functions of a key.

Images are float [B, H, W, C] in [0, 1]; every view keeps the shape and stays in [0, 1]. A view is
a random resized crop (bilinear resampling back to H x W), a horizontal flip (only where it suits
the data: not for digits), colour jitter of brightness, contrast and saturation (colour images
only) and additive Gaussian noise, in that order.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Augment(NamedTuple):
  """Settings of the views. crop_min_scale: smallest crop area as a share of the image, in (0, 1];
  flip: random horizontal flips; jitter: colour-jitter strength in [0, 1) (0 = off; ignored for
  grey images); noise_std: standard deviation of the additive noise (0 = off)."""
  crop_min_scale: float = 0.3
  flip: bool = False
  jitter: float = 0.0
  noise_std: float = 0.0


def random_resized_crop(key: jax.Array, image: jax.Array, min_scale: float) -> jax.Array:
  """A crop of area share in [min_scale, 1] and aspect ratio in [3/4, 4/3], resized to the
  image's size. image: [H, W, C] -> [H, W, C]."""
  h, w = image.shape[0], image.shape[1]
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = jax.random.uniform(k_area, (), minval=min_scale, maxval=1.0) * h * w
  ratio = jnp.exp(jax.random.uniform(k_ratio, (), minval=jnp.log(3 / 4), maxval=jnp.log(4 / 3)))
  ch = jnp.clip(jnp.sqrt(area / ratio), 1.0, h)
  cw = jnp.clip(jnp.sqrt(area * ratio), 1.0, w)
  oy = jax.random.uniform(k_y, ()) * (h - ch)
  ox = jax.random.uniform(k_x, ()) * (w - cw)
  scale = jnp.array([h / ch, w / cw])
  out = jax.image.scale_and_translate(image, image.shape, (0, 1), scale, -jnp.array([oy, ox]) * scale,
                                      method="linear", antialias=False)
  return jnp.clip(out, 0.0, 1.0)


def colour_jitter(key: jax.Array, image: jax.Array, strength: float) -> jax.Array:
  """Brightness, contrast and saturation, each scaled by a factor drawn from
  [1 - strength, 1 + strength]. image: [H, W, 3] in [0, 1] -> the same."""
  kb, kc, ks = jax.random.split(key, 3)
  factor = lambda k: jax.random.uniform(k, (), minval=1 - strength, maxval=1 + strength)
  x = image * factor(kb)
  mean = jnp.mean(x)
  x = (x - mean) * factor(kc) + mean
  grey = jnp.sum(x * jnp.array([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
  x = (x - grey) * factor(ks) + grey
  return jnp.clip(x, 0.0, 1.0)


def view(key: jax.Array, image: jax.Array, aug: Augment) -> jax.Array:
  """One random view of one image [H, W, C] in [0, 1]."""
  k_crop, k_flip, k_jit, k_noise = jax.random.split(key, 4)
  x = random_resized_crop(k_crop, image, aug.crop_min_scale)
  if aug.flip:
    x = jnp.where(jax.random.bernoulli(k_flip), x[:, ::-1], x)
  if aug.jitter > 0 and image.shape[-1] == 3:
    x = colour_jitter(k_jit, x, aug.jitter)
  if aug.noise_std > 0:
    x = jnp.clip(x + aug.noise_std * jax.random.normal(k_noise, x.shape), 0.0, 1.0)
  return x


def views(key: jax.Array, images: jax.Array, aug: Augment) -> jax.Array:
  """One independent view of each image. images: [B, H, W, C] in [0, 1] -> [B, H, W, C]."""
  return jax.vmap(view, in_axes=(0, 0, None))(jax.random.split(key, images.shape[0]), images, aug)


__all__ = ["Augment", "colour_jitter", "random_resized_crop", "view", "views"]
