"""The four-metrics paper on MNIST: a 2-conv + batch-norm CNN (`cnn2_bn`), least confidence,
smallest margin, largest margin and entropy against random, 3 seeds, per-class accuracy recorded
every round (`experiments.report` draws the per-class panels).

The binary variant (digits 0 vs 1): add `--classes=0,1`. Needs `--data_dir` = an MNIST IDX folder.
"""
from jaxal.presets import default


def get_config():
  c = default.get_config()
  c.dataset = "idx"
  c.model = "cnn2_bn"
  c.strategies = "least_confidence,margin,largest_margin,entropy,random"
  c.seeds = 3
  c.initial_size = 100
  c.query_size = 100
  c.rounds = 10
  c.epochs = 20
  c.batch_size = 64
  c.val_size = 500
  c.model_selection = "best_val"  # the round keeps the epoch best on the validation set
  return c
