"""jaxal: deep active learning for image classification in JAX/Flax.

The fold of an active-learning run, and its pieces:

    round_fn = jaxal.make_round(model, tx, jaxal.strategies.entropy(), budget=jaxal.Budget(20, 10, 5))
    state, metrics = round_fn(state, pool, test)          # one round, pure and jittable
    records = jaxal.run(round_fn, pool, test, seeds, splits)   # all rounds, all seeds

Everything else is imported from its module: `jaxal.strategies` (factories), `jaxal.scoring`,
`jaxal.acquisition`, `jaxal.annotation`, `jaxal.training`, `jaxal.kmeans`, `jaxal.selection.*`,
`jaxal.stopping`, `jaxal.checkpointing`, `jaxal.sharding`, `jaxal.streaming`, `jaxal.human`,
`jaxal.data`, `jaxal.models`.
"""
from jaxal import strategies
from jaxal.annotation import DECLINE, SKIP, UNSURE, Query, tell, tell_query
from jaxal.data import load_dataset, make_splits
from jaxal.driver import run, run_scanned
from jaxal.errors import ArgumentError
from jaxal.export import load_model
from jaxal.models import get_model
from jaxal.round import Round, make_round
from jaxal.state import ALState, Budget, LabeledArrays, TrainConfig, Uncertainty
from jaxal.strategies import ClusterAnnotation, SelectionInputs, Strategy
from jaxal.training import make_optimizer

__version__ = "0.1.0"

__all__ = [
    "ALState", "ArgumentError", "Budget", "ClusterAnnotation", "DECLINE", "LabeledArrays", "Query",
    "Round", "SKIP", "SelectionInputs", "Strategy", "TrainConfig", "UNSURE", "Uncertainty",
    "get_model", "load_dataset", "load_model", "make_optimizer", "make_round", "make_splits", "run",
    "run_scanned", "strategies", "tell", "tell_query",
]
