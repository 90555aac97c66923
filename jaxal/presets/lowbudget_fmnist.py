"""The low-budget protocol on Fashion-MNIST (issue 19), in the spirit of the cross-domain low-budget
benchmarks (TypiClust, ProbCover): as many first labels as classes, chosen by each strategy itself
from no labels (`--initial_by=strategy`, jaxal.initial; strategies that need a trained network
start from random's uniform choice), one label per class per round, up to 20 labels per class (19
rounds), a linear head on self-supervised embeddings, no validation set, 10 seeds. Give the embeddings with `--encoder`
(from `jaxal-pretrain --preset=simclr_fmnist`) or `--features`, and `--data_dir`:

  python -m experiments.pretrain --preset=simclr_fmnist --data_dir=<IDX folder> --workdir=runs/ssl_fmnist
  python -m experiments.run --preset=lowbudget_fmnist --data_dir=<IDX folder> \\
      --encoder=runs/ssl_fmnist/encoder.npz
"""
from jaxal.presets import default

STRATEGIES = "random,typiclust,probcover,coreset,kmeans,badge,hybrid,margin,entropy"


def get_config():
  c = default.get_config()
  c.dataset = "idx"
  c.model = "linear"
  c.train = "linear"
  c.strategies = STRATEGIES
  c.seeds = 10
  c.initial_size = 10
  c.initial_by = "strategy"
  c.query_size = 10
  c.rounds = 19
  c.epochs = 100
  c.batch_size = 32
  c.optimizer = "adam"
  c.learning_rate = 1e-2
  c.val_size = 0
  c.n_clusters = 5
  c.graph_subset = 5000
  # ProbCover's radius: the paper's purity 0.95 gives balls too small for these encoders (k-means
  # agrees with the classes on only ~80-87% of MNIST, so the 5% least pure balls sit in dense class
  # regions): 10 balls cover ~10% of the pool and the first picks pile into the densest class.
  # 0.6 was chosen on Fashion-MNIST (a selection proxy) and held out on MNIST (NOTES19.md).
  c.probcover_purity = 0.6
  return c
