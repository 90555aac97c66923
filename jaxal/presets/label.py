"""Label a folder of unlabeled images in the browser (`python -m experiments.label`): the labeling
page, one run, a margin strategy after a TypiClust cold start, 20 images a round for 10 rounds."""
import ml_collections

from jaxal.presets import default


def get_config() -> ml_collections.ConfigDict:
  c = default.get_config()
  c.dataset = "unlabeled"
  c.oracle = "web"
  c.model = "cnn3"
  c.strategies = "margin"
  c.seeds = 1
  c.initial_size = 0
  c.val_size = 0
  c.query_size = 20
  c.rounds = 10
  c.epochs = 30
  c.workdir = "runs/label"
  return c
