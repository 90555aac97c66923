"""Predictive samples and acquisition scores as pure functions of probabilities.

`predict_samples` turns a model and inputs into probabilities with a leading sample axis
[S, N, C]: one deterministic pass (S = 1), S MC-dropout passes (dropout on, batch norm in inference
mode) or the M members of a deep ensemble. Every score below is a function of that array only, so
every score works with every method.

Convention: every score is an *uncertainty*: higher means more informative, so selection takes the
top-K. With p̄ = mean over samples of p (the predictive distribution):

  least_confidence   1 - max_c p̄_c
  margin             1 - (p̄_(1) - p̄_(2))       (smallest margin: best minus second best)
  largest_margin     1 - (p̄_(1) - p̄_(C))       (best minus worst)
  entropy            H[p̄] = -sum_c p̄_c log p̄_c  (max entropy; 0 log 0 = 0)
  bald               H[p̄] - mean_s H[p_s]        (mutual information between label and weights)
  variation_ratios   1 - (votes of the modal argmax class) / S
  mean_std           mean_c std_s p_sc           (population std over samples)
"""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxal.errors import ArgumentError
from jaxal.state import METHODS


# ---------------------------------------------------------------------------------------------
# Point scores of probabilities [..., N, C] -> [..., N]

def least_confidence(probs: jax.Array) -> jax.Array:
  return 1.0 - jnp.max(probs, axis=-1)


def margin(probs: jax.Array) -> jax.Array:
  top2 = jax.lax.top_k(probs, 2)[0]
  return 1.0 - (top2[..., 0] - top2[..., 1])


def largest_margin(probs: jax.Array) -> jax.Array:
  return 1.0 - (jnp.max(probs, axis=-1) - jnp.min(probs, axis=-1))


def entropy(probs: jax.Array) -> jax.Array:
  safe = jnp.where(probs > 0, probs, 1.0)
  return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(safe), 0.0), axis=-1)


SCORES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "largest_margin": largest_margin,
    "entropy": entropy,
}


# ---------------------------------------------------------------------------------------------
# Sample scores of probabilities [S, N, C] -> [N]

def bald(samples: jax.Array) -> jax.Array:
  """Mutual information H[mean_s p_s] - mean_s H[p_s]; 0 when all samples agree."""
  return entropy(jnp.mean(samples, axis=0)) - jnp.mean(entropy(samples), axis=0)


def variation_ratios(samples: jax.Array) -> jax.Array:
  """1 - f_m / S where f_m counts the samples whose argmax is the modal class."""
  s, _, c = samples.shape
  votes = jnp.sum(jax.nn.one_hot(jnp.argmax(samples, axis=-1), c), axis=0)  # [N, C]
  return 1.0 - jnp.max(votes, axis=-1) / s


def mean_std(samples: jax.Array) -> jax.Array:
  """Mean over classes of the standard deviation over samples, sqrt(E[p^2] - E[p]^2)."""
  return jnp.mean(jnp.std(samples, axis=0), axis=-1)


def on_mean(score: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
  """Lifts a point score to samples: applied to the mean prediction."""
  def lifted(samples: jax.Array) -> jax.Array:
    return score(jnp.mean(samples, axis=0))
  lifted.__name__ = getattr(score, "__name__", "score")
  return lifted


SAMPLE_SCORES: dict[str, Callable[[jax.Array], jax.Array]] = {
    **{name: on_mean(fn) for name, fn in SCORES.items()},
    "bald": bald,
    "variation_ratios": variation_ratios,
    "mean_std": mean_std,
}
# Scores that are identically 0 with a single deterministic sample.
NEEDS_SAMPLES = ("bald", "variation_ratios", "mean_std")


def get_score(name: str) -> Callable[[jax.Array], jax.Array]:
  """A score of samples [S, N, C] -> [N] by name."""
  if name not in SAMPLE_SCORES:
    raise ValueError(f"unknown score {name!r}; accepted: {', '.join(SAMPLE_SCORES)}.")
  return SAMPLE_SCORES[name]


# ---------------------------------------------------------------------------------------------
# Predictive samples

def has_dropout(model: nn.Module) -> bool:
  """Whether the network has a dropout layer with a positive rate (jaxal's networks declare
  `dropout_rate` or `dropout_rates`)."""
  rates = list(getattr(model, "dropout_rates", ()) or ())
  rate = getattr(model, "dropout_rate", None)
  if rate is not None:
    rates.append(rate)
  return any(r > 0 for r in rates)


def check_method(model: nn.Module, method: str) -> None:
  if method not in METHODS:
    raise ArgumentError(f"{{uncertainty.method}}: unknown method {method!r}; accepted: "
                        f"{', '.join(METHODS)}.")
  if method == "mc_dropout" and not has_dropout(model):
    raise ArgumentError(f"{{uncertainty.method}}=mc_dropout needs a network with dropout; "
                     f"{type(model).__name__} has none (dropout rate 0). Use "
                        "deterministic or ensemble, or a model with dropout.")


def predict_samples(model: nn.Module, variables: Any, x: jax.Array, key: jax.Array | None,
                    method: str, num_samples: int = 20, shared_trunk: bool = True) -> jax.Array:
  """Class probabilities with a leading sample axis.

  Args:
    variables: the model's variables; for "ensemble" with a leading member axis [M, ...].
    x: inputs [N, H, W, C] (one chunk; see `score_pool` for chunked use over a large pool).
    key: dropout randomness for "mc_dropout" (sample s uses `fold_in(key, s)`); unused otherwise.
    method: "deterministic" (S = 1), "mc_dropout" (S = num_samples passes with dropout on and batch
      norm in inference mode) or "ensemble" (S = M members).
    shared_trunk: for "mc_dropout", compute the deterministic trunk (everything before the first
      dropout layer) once and only the head S times; False runs S full passes (same result for the
      same keys, S times the trunk's cost).
  Returns:
    float32 [S, N, C].
  """
  check_method(model, method)
  if method == "deterministic":
    return jax.nn.softmax(model.apply(variables, x)[0], axis=-1)[None]
  if method == "ensemble":
    return jax.vmap(lambda v: jax.nn.softmax(model.apply(v, x)[0], axis=-1))(variables)
  keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(num_samples))
  if shared_trunk:
    h = model.apply(variables, x, method="trunk")
    run = lambda k: model.apply(variables, h, dropout=True, method="head", rngs={"dropout": k})[0]
  else:
    run = lambda k: model.apply(variables, x, dropout=True, rngs={"dropout": k})[0]
  return jax.nn.softmax(jax.vmap(run)(keys), axis=-1)


def mean_probs(model: nn.Module, variables: Any, x: jax.Array, method: str) -> jax.Array:
  """The predictive distribution used for evaluation [N, C]: the deterministic network for
  "deterministic" and "mc_dropout" (dropout off, as in Gal et al.'s evaluation), the members'
  average for "ensemble"."""
  if method == "ensemble":
    return jnp.mean(predict_samples(model, variables, x, None, "ensemble"), axis=0)
  return jax.nn.softmax(model.apply(variables, x)[0], axis=-1)


def score_pool(model: nn.Module, variables: Any, x: jax.Array, key: jax.Array | None, method: str,
               score: Callable[[jax.Array], jax.Array], num_samples: int = 20,
               chunk: int = 1024, shared_trunk: bool = True) -> jax.Array:
  """`score(predict_samples(...))` over `x` [N, ...] in chunks: float32 [N], with peak memory set by
  the chunk (the [S, N, C] sample array is never built for the whole pool). Chunk i draws its
  dropout masks from `fold_in(key, i)`."""
  from jaxal.training import apply_in_chunks  # pylint: disable=import-outside-toplevel

  def chunk_scores(xb, i):
    k = None if key is None else jax.random.fold_in(key, i)
    return score(predict_samples(model, variables, xb, k, method, num_samples, shared_trunk))

  return apply_in_chunks(chunk_scores, x, chunk, with_index=True)
