"""The constrained-setting paper, "constrained" protocol: 100 initial labels, 10 per round, 100
rounds, 300 validation labels, Random vs Max Entropy vs BALD (MC dropout, 20 samples), 3 seeds.

The paper's grid: `--data_dir` MNIST / Fashion-MNIST (IDX) or CIFAR-10 (`--dataset=folder`) ×
`--model=lenet5` or `resnet18` (CIFAR stem; `--pretrained=<npz>` for ImageNet weights with
`resnet18_imagenet`) × `--noise=none|gaussian|salt_and_pepper` (on 10% of the images,
`--noise_fraction`). The "ideal" protocol is the preset `constrained_ideal`. The supervised baseline
trained on the same number of random labels is the `random` strategy's curve.
"""
from jaxal.presets import default


def get_config():
  c = default.get_config()
  c.dataset = "idx"
  c.model = "lenet5"
  c.strategies = "random,entropy,bald"
  c.uncertainty = "mc_dropout"
  c.mc_samples = 20
  c.seeds = 3
  c.initial_size = 100
  c.query_size = 10
  c.rounds = 100
  c.val_size = 300
  c.model_selection = "best_val"  # the round keeps the epoch best on the validation set
  c.epochs = 50
  c.batch_size = 64
  c.optimizer = "sgd"
  c.learning_rate = 0.01
  c.momentum = 0.9
  c.noise_fraction = 0.1
  return c
