"""Gal, Islam & Ghahramani (2017), "Deep Bayesian Active Learning with Image Data", MNIST (sec. 5.1).

20 balanced initial labels, 100 validation labels, 10 acquisitions per round up to 1000 labels (98
rounds), their CNN (`gal_cnn`), MC dropout with 20 samples, the model re-trained from scratch every
round, BALD / variation ratios / max entropy / mean STD / random, 3 seeds. As in their code, each
round scores a random subset of 2000 pool points, and trains 50 epochs with Adam, batch 128.
Their L2 term is 3.5 / N on the weights; we use a fixed PyTorch-style weight decay (see
BUILD_NOTES.md). Needs `--data_dir` pointing to an MNIST IDX folder.
"""
from jaxal.presets import default


def get_config():
  c = default.get_config()
  c.dataset = "idx"
  c.model = "gal_cnn"
  c.strategies = "bald,variation_ratios,entropy,mean_std,random"
  c.uncertainty = "mc_dropout"
  c.mc_samples = 20
  c.seeds = 3
  c.initial_size = 20
  c.val_size = 100
  c.query_size = 10
  c.rounds = 98
  c.epochs = 50
  c.batch_size = 128
  c.optimizer = "adam"
  c.learning_rate = 1e-3
  c.weight_decay = 1e-4
  c.pool_subset = 2000
  c.reinit = True
  return c
