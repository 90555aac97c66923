"""The constrained-setting paper, "ideal" protocol: 1,000 initial labels, 1,000 per round, 10 rounds,
5,000 validation labels; otherwise as `constrained_mnist` (Random / Max Entropy / BALD, the same
dataset × model × noise grid through flags)."""
from jaxal.presets import constrained_mnist


def get_config():
  c = constrained_mnist.get_config()
  c.initial_size = 1000
  c.query_size = 1000
  c.rounds = 10
  c.val_size = 5000
  return c
