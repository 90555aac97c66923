"""The low-budget protocol on Fashion-MNIST (issue 19), in the spirit of the cross-domain low-budget
benchmarks (TypiClust, ProbCover): one label per class to start (a balanced random initial set),
one label per class per round, up to 20 labels per class (19 rounds), a linear head on
self-supervised embeddings, no validation set, 10 seeds. Give the embeddings with `--encoder`
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
  c.query_size = 10
  c.rounds = 19
  c.epochs = 100
  c.batch_size = 32
  c.optimizer = "adam"
  c.learning_rate = 1e-2
  c.val_size = 0
  c.n_clusters = 5
  c.graph_subset = 5000
  return c
