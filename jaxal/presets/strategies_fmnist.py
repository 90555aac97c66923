"""Every strategy of the registry side by side on Fashion-MNIST at a 2-CPU-core scale (issue 9).

LeNet-5 with MC dropout (S = 10; point scores use the mean prediction), 20 balanced initial labels,
10 per round for 10 rounds (120 labels at the end), 20 epochs of Adam per round, each round scoring
a random subset of 2,000 unlabeled items (TypiClust and ProbCover work on the same subset plus the
labeled items), 3 seeds. Needs `--data_dir` pointing to a Fashion-MNIST IDX folder.

  python -m experiments.run --preset=strategies_fmnist --data_dir=<Fashion-MNIST IDX folder>
"""
from jaxal.presets import default

STRATEGIES = ("random,least_confidence,margin,largest_margin,entropy,bald,variation_ratios,"
              "mean_std,hybrid,batchbald,power_bald,power_entropy,coreset,badge,typiclust,"
              "probcover,cluster_margin,kmeans,margin_cluster_mean")


def get_config():
  c = default.get_config()
  c.dataset = "idx"
  c.model = "lenet5"
  c.strategies = STRATEGIES
  c.uncertainty = "mc_dropout"
  c.mc_samples = 10
  c.seeds = 3
  c.initial_size = 20
  c.query_size = 10
  c.rounds = 10
  c.epochs = 20
  c.batch_size = 32
  c.optimizer = "adam"
  c.learning_rate = 1e-3
  c.val_size = 100
  c.pool_subset = 2000
  c.graph_subset = 2000
  c.n_clusters = 5
  return c
