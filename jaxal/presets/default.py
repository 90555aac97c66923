"""The quick default: scikit-learn digits, an MLP, random vs three uncertainty scores, 3 seeds.

Finishes in about a minute on 2 CPU cores (see BUILD_NOTES.md for the measured time)."""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.dataset = "digits"
  c.data_dir = ""
  c.model = "mlp"
  c.strategies = "random,entropy,least_confidence,margin"
  c.seeds = 3
  c.initial_size = 20
  # Who chooses those first labels: "random" (balanced, shared by all strategies) or "strategy"
  # (each strategy from no labels, on the embeddings; needs --train=linear; jaxal.initial).
  c.initial_by = "random"
  c.query_size = 10
  c.rounds = 20
  c.epochs = 50
  c.batch_size = 32
  c.optimizer = "adam"
  c.learning_rate = 1e-3
  c.momentum = 0.9
  c.weight_decay = 0.0
  c.l2_per_label = 0.0
  c.reinit = True
  c.uncertainty = "deterministic"
  c.mc_samples = 20
  c.ensemble_size = 5
  c.pool_subset = 0
  # With mc_dropout: also record test accuracy of the MC-dropout predictive mean over this many
  # passes (test_accuracy_mc; 0 = off). test_accuracy stays the deterministic network's.
  c.test_mc_samples = 0
  c.hybrid_score = "entropy"
  c.alpha = 0.5
  c.n_clusters = 5
  c.purity = 0.8
  c.clusters_per_round = 10
  c.cluster_size = 75
  c.same_init = False
  c.val_size = 50
  # Model selection on the validation set: last (keep the last epoch) or best_val; early stopping
  # after this many evaluations without improvement (0 = off); evaluate every val_every epochs.
  c.model_selection = "last"
  c.val_every = 1
  c.early_stopping = 0
  c.classes = ""
  c.class_map = ""
  c.test_fraction = 0.25
  # Reduced scale: a class-stratified random sample (fixed seed) of the training / test split.
  c.train_limit = 0
  c.test_limit = 0
  c.cache_dir = ""
  c.eval_batch_size = 1024
  c.seed_batching = "auto"
  c.workdir = ""
  c.overwrite = False
  c.checkpoint_every = 1
  c.keep_checkpoints = 2
  c.oracle = "simulated"
  # Progress while a round runs: phases (train / evaluate / select, live), rounds (a line a round;
  # the programs can come from the compilation cache) or auto (on a terminal: rounds, then phases
  # once a round takes 20 s).
  c.progress = "auto"
  # A pool without labels (--dataset=unlabeled) and the labeling page (--oracle=web).
  c.initial_labels = ""
  c.image_size = 0
  c.holdout = 0.2
  c.cold_start = "typiclust"
  c.host = "127.0.0.1"
  c.port = 8765
  c.token = ""
  # Strategy hyper-parameters (the factories in jaxal.strategies; names in jaxal.registry).
  c.batchbald_configs = 1000
  c.power_beta = 1.0
  c.graph_subset = 5000
  c.typiclust_max_clusters = 500
  c.typiclust_neighbors = 20
  c.probcover_delta = 0.0
  c.probcover_purity = 0.95
  c.cluster_margin_factor = 10.0
  c.cluster_margin_threshold = 0.0
  # Input noise on a fraction of the images (jaxal.data.noise), and pretrained weights.
  c.noise = "none"
  c.noise_fraction = 0.1
  c.noise_std = 0.1
  c.noise_amount = 0.05
  c.noise_splits = "train"
  c.noise_seed = 0
  c.pretrained = ""
  # Self-supervised features (jaxal.features): full | linear | finetune, and where they come from.
  c.train = "full"
  c.features = ""
  c.encoder = ""
  # Stopping rules (jaxal.stopping); 0 = off.
  c.stop_labels = 0
  c.stop_interactions = 0
  c.stop_min_uncertainty = 0.0
  c.stop_agreement = 0.0
  c.stop_patience = 1
  c.stop_set = 0
  return c
