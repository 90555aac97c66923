"""The hybrid uncertainty + clustering paper on CIFAR-10: its 3-block CNN, the proposed hybrid
selection (top αK by entropy, k-means on their features, the rest nearest to the centroids) against
uncertainty (entropy) and random, 3 seeds.

Full scale (accelerator): 1,000 initial labels, 1,000 per round, 10 rounds, 5,000 validation labels.
Reduced CPU scale: see BUILD_NOTES.md. Needs `--data_dir` = the CIFAR-10 zip or folder of class
folders (`--dataset=folder`).
"""
from jaxal.presets import default


def get_config():
  c = default.get_config()
  c.dataset = "folder"
  c.model = "cnn3"
  c.strategies = "hybrid,entropy,random"
  c.hybrid_score = "entropy"
  c.alpha = 0.5
  c.n_clusters = 10
  c.seeds = 3
  c.initial_size = 1000
  c.query_size = 1000
  c.rounds = 10
  c.epochs = 30
  c.batch_size = 64
  c.val_size = 5000
  c.model_selection = "best_val"  # the round keeps the epoch best on the validation set
  return c
