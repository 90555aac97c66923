"""jaxal: deep active learning for image classification in JAX/Flax.

The public API: state, the round function and its parts (ask / tell), training, scores, strategies,
oracles, models and data.
"""
from jaxal.state import ALState, RoundConfig, TrainConfig
from jaxal.loop import DECLINE, SKIP, UNSURE, LabeledArrays, Query, ask, ask_query, init_state, \
    make_round_fns, make_scanned_fn, round_fn, run, run_scanned, tell, tell_query, train, \
    train_and_evaluate
from jaxal.stopping import StopRules
from jaxal.metrics import expected_calibration_error
from jaxal.training import evaluate, fit, make_optimizer, predict, train_step
from jaxal.scoring import SCORES, entropy, largest_margin, least_confidence, margin
from jaxal.strategies import STRATEGIES, Strategy, get_strategy, random_select, top_k
from jaxal.oracles import simulated_oracle
from jaxal.models import MODELS, get_model
from jaxal.metrics import accuracy, per_class_accuracy
from jaxal import kmeans  # the module: jaxal.kmeans.kmeans(...), .assign, .kmeans_plus_plus
from jaxal import sharding, streaming  # modules: pools over devices, pools on the host
from jaxal import batch_strategies, diversity, human  # modules: more strategies, labeling
from jaxal.kmeans import KMeansResult
from jaxal.clustering import cluster_expert, hybrid_select
from jaxal.scoring import SAMPLE_SCORES, bald, mean_std, predict_samples, score_pool, \
    variation_ratios

__version__ = "0.1.0"

__all__ = [
    "ALState", "RoundConfig", "TrainConfig", "LabeledArrays", "ask", "init_state",
    "Query", "ask_query", "tell_query", "SKIP", "UNSURE", "DECLINE", "StopRules",
    "expected_calibration_error", "batch_strategies", "diversity", "human",
    "make_round_fns", "make_scanned_fn", "round_fn", "run", "run_scanned", "tell", "train",
    "train_and_evaluate", "evaluate", "fit",
    "make_optimizer", "predict", "train_step", "SCORES", "entropy", "largest_margin",
    "least_confidence", "margin", "STRATEGIES", "Strategy", "get_strategy", "random_select",
    "top_k", "simulated_oracle", "MODELS", "get_model", "accuracy", "per_class_accuracy",
    "kmeans", "sharding", "streaming", "KMeansResult", "cluster_expert", "hybrid_select",
    "SAMPLE_SCORES",
    "bald", "mean_std", "predict_samples", "score_pool", "variation_ratios",
]
