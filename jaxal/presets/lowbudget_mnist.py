"""The low-budget protocol (see `lowbudget_fmnist`) on MNIST: embeddings from
`jaxal-pretrain --preset=simclr_mnist`.

  python -m experiments.run --preset=lowbudget_mnist --data_dir=<IDX folder> \\
      --encoder=runs/ssl_mnist/encoder.npz
"""
from jaxal.presets import lowbudget_fmnist


def get_config():
  return lowbudget_fmnist.get_config()
