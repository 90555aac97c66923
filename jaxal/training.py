"""Pure training and evaluation: a jitted step, `fit` over a labeled mask with static shapes.

`fit` runs exact epochs over the labeled subset of a fixed pool array. The labeled indices are
compacted into a buffer of static length `capacity` (`jnp.nonzero(..., size=capacity)`); every epoch
permutes its first `n` entries (n = number labeled, dynamic) and runs `ceil(n / batch)` steps in a
`lax.fori_loop` with a dynamic bound; the last partial batch is masked out of the loss. Shapes never
depend on n, so a growing labeled set never recompiles.

Batch norm: `train_step` trains with batch statistics and carries the updated running averages
("batch_stats") through the loop; the padding rows of the last partial batch are masked out of the
batch statistics too (jaxal's batch-norm networks take a row `mask`), so the statistics are those
of the real labeled rows of each batch, as with PyTorch's `drop_last=False`. `predict` / `evaluate`
(and `jaxal.scoring`) call the network with `train=False`: running averages.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal.metrics import accuracy
from jaxal.models.pretrained import load_pretrained
from jaxal.errors import ArgumentError
from jaxal.selection.primitives import chunked_map
from jaxal.state import OPTIMIZERS, TrainConfig



def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
  """SGD (with momentum) or Adam; `weight_decay` is an L2 term added to the gradient before the
  optimiser, which is what `weight_decay` means in PyTorch's SGD and Adam."""
  if cfg.optimizer == "sgd":
    opt = optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)
  elif cfg.optimizer == "adam":
    opt = optax.adam(cfg.learning_rate)
  else:
    raise ArgumentError(f"{{train.optimizer}}: unknown optimizer {cfg.optimizer!r}; accepted: "
                        f"{', '.join(OPTIMIZERS)}.")
  if cfg.weight_decay:
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay), opt)
  return opt


def init_variables(model: nn.Module, key: jax.Array, sample_x: jax.Array) -> Any:
  """Initial variables for inputs shaped like `sample_x` [B, H, W, C].

  A network with a `pretrained` attribute set (an `.npz` path, e.g. `ResNet18(pretrained=...)`)
  starts from those weights and running statistics, with a freshly initialised classifier
  (`jaxal.models.load_pretrained` with `skip_classifier=True`). Every (re)initialisation goes
  through here, so re-initialising every round and ensembles start from the pretrained weights too;
  the file is read when the initialisation is traced and its arrays become constants of the
  compiled program."""
  variables = model.init({"params": key}, sample_x[:1], train=False)
  path = getattr(model, "pretrained", None)
  if path:
    variables = load_pretrained(variables, path, skip_classifier=True)
  return variables


def cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Weighted mean of softmax cross-entropy; weights [B] of 0/1 mask padding out."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.sum(ce * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def kernel_l2(params: Any) -> jax.Array:
  """Sum of squares of every weight matrix / convolution kernel (biases excluded)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  return sum(jnp.sum(v ** 2) for path, v in leaves
             if getattr(path[-1], "key", None) == "kernel")


def takes_row_mask(model: nn.Module) -> bool:
  """Whether the network's `__call__` accepts a row `mask` (jaxal's batch-norm networks do: rows
  where it is False are left out of the batch statistics)."""
  try:
    return "mask" in inspect.signature(model.__call__).parameters
  except (TypeError, ValueError):
    return False


def train_step(model: nn.Module, tx: optax.GradientTransformation, variables: Any, opt_state: Any,
               x: jax.Array, y: jax.Array, w: jax.Array, key: jax.Array, l2: jax.Array | float = 0.0):
  """One optimiser step on a (masked) batch; `l2` scales an extra `kernel_l2` penalty in the loss.
  Returns (variables, opt_state, loss without the penalty).

  Collections other than "params" (batch norm's "batch_stats") are applied mutable with
  `train=True`: batch norm normalises with batch statistics and the step returns the updated running
  averages. A network that takes a row `mask` (see `takes_row_mask`) and has batch statistics gets
  `mask = w > 0`, so rows with weight 0 (the padding of a partial batch) are left out of the batch
  statistics as they are left out of the loss. Networks without batch stats are called as before."""
  params = variables["params"]
  others = {k: v for k, v in variables.items() if k != "params"}
  extra = {"mask": w > 0} if "batch_stats" in others and takes_row_mask(model) else {}

  def loss_fn(p):
    out, new_others = model.apply({"params": p, **others}, x, train=True,
                                  rngs={"dropout": key}, mutable=list(others), **extra)
    ce = cross_entropy(out[0], y, w)
    return ce + l2 * kernel_l2(p), (ce, new_others)

  (_, (loss, new_others)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  params = optax.apply_updates(params, updates)
  return {"params": params, **new_others}, opt_state, loss


def labeled_first_order(key: jax.Array, idx: jax.Array, n: jax.Array, batch: int) -> jax.Array:
  """A random permutation of the first `n` entries of `idx` [capacity], followed by the rest and
  `batch` padding entries (so a batch window starting before `n` never runs past the end).

  Returns int [capacity + batch]; entries at positions >= n are padding and are masked by the
  caller."""
  capacity = idx.shape[0]
  padded = jnp.concatenate([idx, jnp.zeros((batch,), idx.dtype)])
  positions = jnp.arange(capacity + batch)
  noise = jax.random.uniform(key, (capacity + batch,))
  return padded[jnp.argsort(jnp.where(positions < n, noise, 2.0))]


def fit(model: nn.Module, tx: optax.GradientTransformation, variables: Any, opt_state: Any,
        key: jax.Array, x: jax.Array, labels: jax.Array, labeled: jax.Array, cfg: TrainConfig,
        capacity: int, val_x: jax.Array | None = None, val_y: jax.Array | None = None,
        return_info: bool = False):
  """Trains `cfg.epochs` epochs over the items of `x` [N, ...] where `labeled` [N] is True.

  Args:
    labels: int32 [N], the learner's labels (read only where labeled).
    capacity: static upper bound on the number labeled.
    val_x, val_y: the labeled validation set, needed when `cfg.model_selection == "best_val"`:
      the network is evaluated on it every `cfg.val_every` epochs (and after the last epoch) and
      the best evaluation's variables are returned (see `TrainConfig`); `cfg.early_stopping` = P
      stops after P evaluations without improvement (a `lax.while_loop`, so under `vmap` each
      member or seed keeps its own best epoch).
    return_info: also return a dict of int32/float32 scalars: "best_epoch" (1-based epoch of the
      returned variables), "epochs_run", "best_val_accuracy" (NaN without model selection).
  Returns:
    (variables, opt_state, mean loss of the last epoch run) [+ info].
  """
  select = cfg.model_selection == "best_val"
  if select and (val_x is None or val_y is None or val_x.shape[0] == 0):
    raise ArgumentError("{train.model_selection}=best_val needs a labeled validation set: pass "
                        "val_x and val_y (splits with a validation set).")
  if not isinstance(labeled, jax.core.Tracer):
    count = int(np.sum(np.asarray(labeled)))
    if count > capacity:
      raise ValueError(f"fit: {count} items are labeled but capacity={capacity}; capacity must be "
                       "at least the number labeled.")
  x, labels, labeled = jnp.asarray(x), jnp.asarray(labels), jnp.asarray(labeled)
  batch = cfg.batch_size
  n = jnp.sum(labeled).astype(jnp.int32)
  idx = jnp.nonzero(labeled, size=capacity, fill_value=0)[0]
  n_batches = (n + batch - 1) // batch
  l2 = cfg.l2_per_label / jnp.maximum(n, 1).astype(jnp.float32)

  def epoch(e, variables, opt_state):
    perm_key, ekey = jax.random.split(jax.random.fold_in(key, e))
    order = labeled_first_order(perm_key, idx, n, batch)

    def step(i, carry):
      variables, opt_state, total = carry
      take = jax.lax.dynamic_slice(order, (i * batch,), (batch,))
      w = ((i * batch + jnp.arange(batch)) < n).astype(jnp.float32)
      y = jnp.where(w > 0, labels[take], 0)
      variables, opt_state, loss = train_step(model, tx, variables, opt_state, x[take], y, w,
                                              jax.random.fold_in(ekey, i), l2)
      return variables, opt_state, total + loss * jnp.sum(w)

    variables, opt_state, total = jax.lax.fori_loop(
        0, n_batches, step, (variables, opt_state, jnp.zeros((), jnp.float32)))
    return variables, opt_state, total / jnp.maximum(n, 1)

  if not select:
    variables, opt_state, loss = jax.lax.fori_loop(
        0, cfg.epochs, lambda e, c: epoch(e, c[0], c[1]),
        (variables, opt_state, jnp.zeros((), jnp.float32)))
    info = {"best_epoch": jnp.asarray(cfg.epochs, jnp.int32),
            "epochs_run": jnp.asarray(cfg.epochs, jnp.int32),
            "best_val_accuracy": jnp.asarray(jnp.nan, jnp.float32)}
    return (variables, opt_state, loss, info) if return_info else (variables, opt_state, loss)

  val_x, val_y = jnp.asarray(val_x), jnp.asarray(val_y)

  def val_scores(variables):
    logits, _ = predict(model, variables, val_x, cfg.eval_batch_size)
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, val_y))
    return accuracy(jnp.argmax(logits, -1), val_y), ce

  # One loop iteration = a block of up to `val_every` epochs, then one evaluation (no `cond`, so
  # under `vmap`, where members stop at different blocks, nothing is evaluated twice).
  # carry: epochs done, current (variables, opt_state, loss), best (variables, opt_state),
  # best (accuracy, loss, epoch), evaluations since the best.
  def cond(c):
    e, since = c[0], c[-1]
    go = e < cfg.epochs
    if cfg.early_stopping:
      go = go & (since < cfg.early_stopping)
    return go

  def body(c):
    e, variables, opt_state, loss, best_v, best_o, best_acc, best_ce, best_e, since = c
    stop = jnp.minimum(e + cfg.val_every, cfg.epochs)
    variables, opt_state, loss = jax.lax.fori_loop(
        e, stop, lambda i, vo: epoch(i, vo[0], vo[1]), (variables, opt_state, loss))
    acc, ce = val_scores(variables)
    better = (acc > best_acc) | ((acc == best_acc) & (ce < best_ce))
    pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)
    return (stop, variables, opt_state, loss, pick(variables, best_v), pick(opt_state, best_o),
            jnp.where(better, acc, best_acc), jnp.where(better, ce, best_ce),
            jnp.where(better, stop, best_e), jnp.where(better, 0, since + 1))

  zero = jnp.zeros((), jnp.int32)
  init = (zero, variables, opt_state, jnp.zeros((), jnp.float32), variables, opt_state,
          jnp.asarray(-1.0, jnp.float32), jnp.asarray(jnp.inf, jnp.float32), zero, zero)
  e, _, _, loss, best_v, best_o, best_acc, _, best_e, _ = jax.lax.while_loop(cond, body, init)
  info = {"best_epoch": best_e, "epochs_run": e, "best_val_accuracy": best_acc}
  return (best_v, best_o, loss, info) if return_info else (best_v, best_o, loss)


def apply_in_chunks(fn: Callable[..., Any], x: jax.Array, chunk: int,
                    with_index: bool = False) -> Any:
  """Maps `fn` over `x` [N, ...] in chunks of `chunk` rows (`lax.map`), so peak memory is set by the
  chunk, not by N. Rows are padded to a whole number of chunks and the padding is cut off again.
  With `with_index`, `fn(x_chunk, chunk_index)` (e.g. to fold the index into a key).
  (`jaxal.selection.primitives.chunked_map` over the one array.)"""
  return chunked_map(fn, (x,), chunk, with_index=with_index)


def predict(model: nn.Module, variables: Any, x: jax.Array, chunk: int = 1024):
  """Deterministic forward pass in chunks: (logits [N, C], features [N, D])."""
  return apply_in_chunks(lambda xb: model.apply(variables, xb, train=False), x, chunk)
