"""The low-budget protocol (see `lowbudget_fmnist`) on CIFAR-10 (the JPEG zip in `--data_dir`):
embeddings from `jaxal-pretrain --preset=simclr_cifar10`, or `--features` from another encoder.

  python -m experiments.run --preset=lowbudget_cifar10 --data_dir=<cifar10-jpeg.zip> \\
      --encoder=runs/ssl_cifar10/encoder.npz
"""
from jaxal.presets import lowbudget_fmnist


def get_config():
  c = lowbudget_fmnist.get_config()
  c.dataset = "folder"
  return c
