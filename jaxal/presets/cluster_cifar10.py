"""The cluster-based AL paper's five scenarios on CIFAR-10 (for EuroSAT, point `--data_dir` at its
image folder): random, uncertain-only (entropy), cluster-only, uncertain+cluster and
cluster+uncertain. k-means over the unlabeled pool's CNN features each round; a simulated expert
labels a whole cluster with its modal class when at least 80% of it agrees; one cluster shown or
one image labeled = one interaction; the network reset to the same initial weights every round.
Curves against interactions are in `curves_interactions.png`. Needs `--data_dir`.
"""
from jaxal.presets import default


def get_config():
  c = default.get_config()
  c.dataset = "folder"
  c.model = "cnn3"
  c.strategies = "random,entropy,cluster,entropy+cluster,cluster+entropy"
  c.purity = 0.8
  c.clusters_per_round = 20
  c.cluster_size = 75
  c.same_init = True
  c.seeds = 3
  c.initial_size = 500
  c.query_size = 100
  c.rounds = 10
  c.epochs = 15
  c.batch_size = 64
  c.val_size = 1000
  c.model_selection = "best_val"  # the round keeps the epoch best on the validation set
  return c
