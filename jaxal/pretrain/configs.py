"""Pretraining presets (`--preset` of `jaxal-pretrain`): flat settings, one function per dataset."""
from __future__ import annotations

import ml_collections

from jaxal.errors import ArgumentError


def default() -> ml_collections.ConfigDict:
  """SimCLR on scikit-learn's digits with the MLP's trunk: a smoke run of seconds."""
  c = ml_collections.ConfigDict()
  c.method = "simclr"
  c.dataset = "digits"
  c.data_dir = ""
  c.cache_dir = ""
  c.model = "mlp"
  c.train_limit = 0
  c.steps = 200
  c.batch_size = 128
  c.learning_rate = 1e-3
  c.weight_decay = 1e-4
  c.temperature = 0.5
  c.projection_dim = 64
  c.hidden = 256
  c.crop_min_scale = 0.5
  c.flip = False
  c.jitter = 0.0
  c.noise_std = 0.05
  c.seed = 0
  c.log_every = 50
  c.checkpoint_every = 100
  c.probe_steps = 500
  c.workdir = ""
  c.overwrite = False
  return c


def simclr_mnist() -> ml_collections.ConfigDict:
  """MNIST (IDX folder in --data_dir), LeNet-5's trunk (120-d features), no flips."""
  c = default()
  c.dataset = "idx"
  c.model = "lenet5"
  c.steps = 5000
  c.batch_size = 256
  c.crop_min_scale = 0.4
  c.checkpoint_every = 500
  c.probe_steps = 1000
  return c


def simclr_fmnist() -> ml_collections.ConfigDict:
  """Fashion-MNIST: as MNIST, with horizontal flips (clothes are left-right symmetric), and the
  MLP's trunk (256-d features): LeNet-5's 120-d trunk reached a linear probe of 0.832 in 5000
  steps, the MLP's 0.856 (BUILD_NOTES.md, "Good features (issue 19)")."""
  c = simclr_mnist()
  c.model = "mlp"
  c.flip = True
  return c


def simclr_cifar10() -> ml_collections.ConfigDict:
  """CIFAR-10 (the JPEG zip in --data_dir): cnn3's trunk, flips and colour jitter."""
  c = simclr_mnist()
  c.dataset = "folder"
  c.model = "cnn3"
  c.flip = True
  c.jitter = 0.4
  c.crop_min_scale = 0.2
  return c


PRESETS = {"default": default, "simclr_mnist": simclr_mnist, "simclr_fmnist": simclr_fmnist,
           "simclr_cifar10": simclr_cifar10}


def load(name: str) -> ml_collections.ConfigDict:
  if name not in PRESETS:
    raise ArgumentError(f"{{preset}}: unknown preset {name!r}; accepted: {', '.join(PRESETS)}.")
  return PRESETS[name]()
