"""SimCLR training as pure jitted steps: a jaxal model's trunk plus a projection head, NT-Xent on
two views of each image of a batch drawn from the pool.

The encoder is the trunk of any jaxal network (`model.trunk`: everything before its first dropout
layer); the projection head is a 2-layer MLP used only for the loss, as in SimCLR. The state is a
pytree (`PretrainState`); the key of step t is `fold_in(PRNGKey(seed), t)`, so a run resumed from
a checkpoint after step t takes exactly the steps an uninterrupted run takes.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal.pretrain.augment import Augment, views
from jaxal.pretrain.loss import nt_xent


class SimCLRNet(nn.Module):
  """backbone.trunk, then (with `project`) Dense(hidden) - ReLU - Dense(projection_dim)."""
  backbone: nn.Module
  projection_dim: int = 64
  hidden: int = 256

  @nn.compact
  def __call__(self, x, train: bool = True, project: bool = True):
    h = self.backbone.trunk(x, train)
    h = h.reshape((h.shape[0], -1))
    if not project:
      return h
    z = nn.relu(nn.Dense(self.hidden, name="projection_hidden")(h))
    return nn.Dense(self.projection_dim, name="projection")(z)


@flax.struct.dataclass
class PretrainState:
  """step: int32 scalar, steps done; variables: {"params": ..., "batch_stats"?: ...} of SimCLRNet;
  opt_state: the optax state of the params."""
  step: jax.Array
  variables: Any
  opt_state: Any


def _keys(seed) -> jax.Array:
  """(initialisation key, root of the step keys) of a seed."""
  return jax.random.split(jax.random.PRNGKey(seed))


def init_state(net: SimCLRNet, tx: optax.GradientTransformation, seed: int,
               sample: jax.Array) -> PretrainState:
  """The state before step 0; sample: [1, H, W, C] float, shapes only."""
  variables = net.init(_keys(seed)[0], sample, train=False)
  variables = flax.core.unfreeze(variables)
  return PretrainState(step=jnp.zeros((), jnp.int32), variables=variables,
                       opt_state=tx.init(variables["params"]))


def _loss(net, params, other, x, temperature):
  """NT-Xent of the batch [2B, ...] (first half: views 1, second half: views 2)."""
  if other:
    z, updates = net.apply({"params": params, **other}, x, train=True, mutable=list(other))
  else:
    z, updates = net.apply({"params": params}, x, train=True), {}
  b = x.shape[0] // 2
  return nt_xent(z[:b], z[b:], temperature), updates


def make_train_steps(net: SimCLRNet, tx: optax.GradientTransformation, aug: Augment,
                     batch_size: int, temperature: float):
  """A jitted `train_steps(state, images, mean, std, seed, n) -> (state, losses[n])` running n
  (static) SimCLR steps in one `lax.scan`.

  images: uint8 [N, H, W, C] (the pool, on device); mean, std: [C] channel statistics in the
  [0, 1] scale. Each step draws `batch_size` items uniformly (with replacement), makes two views of
  each, and takes one optimizer step on NT-Xent."""

  def step(carry, _):
    state, images, mean, std, seed = carry
    key = jax.random.fold_in(_keys(seed)[1], state.step)
    k_idx, k1, k2 = jax.random.split(key, 3)
    idx = jax.random.randint(k_idx, (batch_size,), 0, images.shape[0])
    x = images[idx].astype(jnp.float32) / 255.0
    x = jnp.concatenate([views(k1, x, aug), views(k2, x, aug)], axis=0)
    x = (x - mean) / std
    params = state.variables["params"]
    other = {k: v for k, v in state.variables.items() if k != "params"}
    (loss, updates), grads = jax.value_and_grad(
        functools.partial(_loss, net), argnums=0, has_aux=True)(params, other, x, temperature)
    upd, opt_state = tx.update(grads, state.opt_state, params)
    variables = {**state.variables, **updates, "params": optax.apply_updates(params, upd)}
    new = PretrainState(step=state.step + 1, variables=variables, opt_state=opt_state)
    return (new, images, mean, std, seed), loss

  @functools.partial(jax.jit, static_argnums=5)
  def train_steps(state, images, mean, std, seed, n: int):
    (state, *_), losses = jax.lax.scan(step, (state, images, mean, std, seed), None, length=n)
    return state, losses

  return train_steps


def make_embed(net: SimCLRNet, batch: int = 1024):
  """A function `embed(variables, images_uint8, mean, std) -> float32 [N, D]`: the trunk's
  features (before the projection head) in inference mode, computed in jitted chunks."""

  @jax.jit
  def chunk(variables, x, mean, std):
    x = (x.astype(jnp.float32) / 255.0 - mean) / std
    return net.apply(variables, x, train=False, project=False)

  def embed(variables, images, mean, std):
    out = [np.asarray(chunk(variables, images[i:i + batch], mean, std))
           for i in range(0, len(images), batch)]
    return np.concatenate(out, axis=0).astype(np.float32)

  return embed


__all__ = ["PretrainState", "SimCLRNet", "init_state", "make_embed", "make_train_steps"]
