"""The four-metrics paper's fruit task: an image folder (Fruits-360 style, one folder per strain)
whose strains are merged into 10 super-classes by a JSON mapping file (`--class_map`, e.g.
{"apple": ["Apple Braeburn", "Apple Golden 1", ...], "banana": [...], ...}), otherwise as
`four_metrics_mnist` (the 2-conv + BN CNN, the four uncertainty measures against random, 3 seeds,
per-class accuracy every round).

The binary variant (apples vs bananas): a mapping file with the two super-classes only. Needs
`--data_dir` (folder or zip) and `--class_map`.
"""
from jaxal.presets import four_metrics_mnist


def get_config():
  c = four_metrics_mnist.get_config()
  c.dataset = "folder"
  return c
