"""Flax Linen networks of the source papers. Each maps images [B, H, W, C] to (logits [B, classes],
features [B, D]), where features are the penultimate activations (used by clustering strategies).

Call convention: `model.apply(variables, x, train=..., dropout=...)`. `train` switches batch norm to
batch statistics (for networks that have it); `dropout` turns dropout on or off independently
(default: on exactly when training), which is what MC dropout needs: dropout on, batch norm in
inference mode. Dropout needs an rng stream named "dropout" when on. Networks with batch norm
(`CNN2BN`, `jaxal.models.resnet.ResNet18`) also take `mask` (bool [B]): with `train=True` only those
rows feed the batch statistics (see `_SplitBN`); their trunk is `trunk(x, train, mask)`.

Every network is split at its first dropout layer into `trunk(x, train)` (deterministic) and
`head(h, train, dropout)`, with `__call__ = head(trunk(x))`. MC dropout computes the trunk once per
input and only the head S times (`jaxal.scoring.predict_samples`). Layers have explicit names, and the
classifier layer is always named "classifier".
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.conv import Conv
from jaxal.models.dropout import Dropout
from jaxal.models.pooling import max_pool


def _dropout_on(train: bool, dropout: bool | None) -> bool:
  return train if dropout is None else dropout


class _Split(nn.Module):
  """Base: `__call__` composes `trunk` and `head`. Subclasses set `has_dropout`."""

  def __call__(self, x, train: bool = False, dropout: bool | None = None):
    return self.head(self.trunk(x, train), train, dropout)


class MLP(_Split):
  """Flatten, hidden dense layers with ReLU and dropout, then a linear classifier."""
  num_classes: int
  pretrained: str = ""  # an .npz to start from (jaxal.training.init_variables)
  hidden: Sequence[int] = (256, 128)
  dropout_rate: float = 0.25

  def setup(self):
    self.dense = [nn.Dense(w, name=f"dense{i}") for i, w in enumerate(self.hidden)]
    self.classifier = nn.Dense(self.num_classes)
    self.drop = Dropout(self.dropout_rate)

  def trunk(self, x, train: bool = False):
    return nn.relu(self.dense[0](x.reshape((x.shape[0], -1))))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    det = not _dropout_on(train, dropout)
    h = self.drop(h, deterministic=det)
    for layer in self.dense[1:]:
      h = self.drop(nn.relu(layer(h)), deterministic=det)
    return self.classifier(h), h


class LeNet5(_Split):
  """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as the constrained-setting paper uses it.

  conv(6, 5x5, same) - pool 2 - conv(16, 5x5, valid) - pool 2 - dense 120 - dense 84 - dense C, with
  dropout (rate `dropout_rate`) after each hidden dense layer. Needs inputs of at least 12x12 pixels
  (28x28 MNIST gives the classic 16x5x5 feature map).
  """
  num_classes: int
  pretrained: str = ""  # an .npz to start from (jaxal.training.init_variables)
  dropout_rate: float = 0.5

  def setup(self):
    self.conv1 = Conv(6, (5, 5), padding="SAME")
    self.conv2 = Conv(16, (5, 5), padding="VALID")
    self.fc1 = nn.Dense(120)
    self.fc2 = nn.Dense(84)
    self.classifier = nn.Dense(self.num_classes)
    self.drop = Dropout(self.dropout_rate)

  def trunk(self, x, train: bool = False):
    if min(x.shape[1], x.shape[2]) < 12:
      raise ValueError(f"lenet5 needs images of at least 12x12 pixels, got {x.shape[1]}x{x.shape[2]};"
                       " use --model=cnn3 or --model=mlp for smaller images.")
    h = max_pool(nn.relu(self.conv1(x)), (2, 2), (2, 2))
    h = max_pool(nn.relu(self.conv2(h)), (2, 2), (2, 2))
    return nn.relu(self.fc1(h.reshape((h.shape[0], -1))))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    det = not _dropout_on(train, dropout)
    h = self.drop(nn.relu(self.fc2(self.drop(h, deterministic=det))), deterministic=det)
    return self.classifier(h), h


class CNN3(_Split):
  """The 3-block CNN of the hybrid uncertainty+clustering paper.

  Three blocks of [conv 3x3 - ReLU - conv 3x3 - ReLU - max-pool 2] with `filters` channels, then dense
  layers with ReLU and dropout, then the classifier. Pooling uses SAME padding so small inputs (8x8
  digits) still go through all three blocks.
  """
  num_classes: int
  pretrained: str = ""  # an .npz to start from (jaxal.training.init_variables)
  filters: Sequence[int] = (32, 64, 128)
  dense: Sequence[int] = (128,)
  dropout_rate: float = 0.5

  def setup(self):
    self.convs = [Conv(f, (3, 3), padding="SAME", name=f"conv{b}_{j}")
                  for b, f in enumerate(self.filters) for j in (0, 1)]
    self.fcs = [nn.Dense(w, name=f"fc{i}") for i, w in enumerate(self.dense)]
    self.classifier = nn.Dense(self.num_classes)
    self.drop = Dropout(self.dropout_rate)

  def trunk(self, x, train: bool = False):
    h = x
    for b in range(len(self.filters)):
      h = nn.relu(self.convs[2 * b](h))
      h = nn.relu(self.convs[2 * b + 1](h))
      h = max_pool(h, (2, 2), (2, 2), padding="SAME")
    h = h.reshape((h.shape[0], -1))
    return nn.relu(self.fcs[0](h)) if self.fcs else h

  def head(self, h, train: bool = False, dropout: bool | None = None):
    det = not _dropout_on(train, dropout)
    h = self.drop(h, deterministic=det)
    for layer in self.fcs[1:]:
      h = self.drop(nn.relu(layer(h)), deterministic=det)
    return self.classifier(h), h


class GalCNN(_Split):
  """The MNIST network of Gal, Islam & Ghahramani (2017), "Deep Bayesian Active Learning with Image
  Data": conv(32, 4x4)-ReLU-conv(32, 4x4)-ReLU-maxpool(2)-dropout(0.25)-dense(128)-ReLU-dropout(0.5)-
  dense(C). Convolutions are 'valid' as in their Keras code (28 -> 25 -> 22 -> 11).

  `kernel`, `pool` and `hidden` give the variant of their released Keras script for the MNIST
  figure (`MC_Dropout_Keras/Dropout_Bald_Q10_N1000_Paper.py` in Riashat/Deep-Bayesian-Active-
  Learning), registered as `gal_cnn_code`: 3x3 convolutions, a 5x5 max-pool with stride 5 and a
  256-unit dense layer (28 -> 26 -> 24 -> 4)."""
  num_classes: int
  pretrained: str = ""  # an .npz to start from (jaxal.training.init_variables)
  dropout_rates: Sequence[float] = (0.25, 0.5)
  kernel: int = 4
  pool: int = 2
  hidden: int = 128

  def setup(self):
    self.conv1 = Conv(32, (self.kernel, self.kernel), padding="VALID")
    self.conv2 = Conv(32, (self.kernel, self.kernel), padding="VALID")
    self.fc = nn.Dense(self.hidden)
    self.classifier = nn.Dense(self.num_classes)
    self.drop1 = Dropout(self.dropout_rates[0])
    self.drop2 = Dropout(self.dropout_rates[1])

  def trunk(self, x, train: bool = False):
    h = nn.relu(self.conv2(nn.relu(self.conv1(x))))
    h = max_pool(h, (self.pool, self.pool), (self.pool, self.pool))
    return h.reshape((h.shape[0], -1))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    det = not _dropout_on(train, dropout)
    h = nn.relu(self.fc(self.drop1(h, deterministic=det)))
    h = self.drop2(h, deterministic=det)
    return self.classifier(h), h


# ---------------------------------------------------------------------------------------------
# Networks with batch norm

BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1: running = 0.9 * running + 0.1 * batch statistic
BN_EPSILON = 1e-5  # PyTorch's default


def row_mask(mask: jnp.ndarray | None, h: jnp.ndarray) -> jnp.ndarray | None:
  """A row mask bool [B] reshaped to broadcast against activations [B, ...] (for `nn.BatchNorm`)."""
  if mask is None:
    return None
  return jnp.asarray(mask, bool).reshape((h.shape[0],) + (1,) * (h.ndim - 1))


class _SplitBN(nn.Module):
  """Base of the networks with batch norm: like `_Split`, plus an optional row `mask` bool [B].

  With `train=True`, batch norm normalises with the statistics of the rows where `mask` is True (all
  rows without a mask) and updates its running averages (apply with `mutable=["batch_stats"]`);
  masked-out rows are still normalised with those statistics but do not influence them.
  `jaxal.training.train_step` passes the loss mask here, so the padding rows of the last partial
  batch of an epoch never corrupt the statistics. With `train=False`, batch norm uses the running
  averages and the mask is ignored. Dropout is controlled by `dropout` independently (MC dropout:
  dropout on, batch norm in inference mode)."""

  def __call__(self, x, train: bool = False, dropout: bool | None = None, mask=None):
    return self.head(self.trunk(x, train, mask), train, dropout)


class CNN2BN(_SplitBN):
  """The MNIST CNN of the four-metrics paper: conv(32, 3x3)-BN-ReLU-maxpool(2)-conv(64, 3x3)-BN-ReLU-
  maxpool(2)-dense(128)-ReLU-dropout(0.5)-dense(C).

  Choices the paper leaves open: convolutions pad SAME (PyTorch padding=1) and have no bias (batch
  norm's shift replaces it); pooling pads SAME, so 28x28 gives 7x7x64 and 8x8 digits give 2x2x64.
  Batch norm uses PyTorch's momentum 0.1 (`bn_momentum=0.9` in Flax's convention) and epsilon 1e-5.
  The trunk ends after dense(128)-ReLU; the head is dropout and the classifier.
  """
  num_classes: int
  pretrained: str = ""  # an .npz to start from (jaxal.training.init_variables)
  filters: Sequence[int] = (32, 64)
  dense: int = 128
  dropout_rate: float = 0.5
  bn_momentum: float = BN_MOMENTUM

  def setup(self):
    self.convs = [Conv(f, (3, 3), padding="SAME", use_bias=False, name=f"conv{i + 1}")
                  for i, f in enumerate(self.filters)]
    self.bns = [nn.BatchNorm(momentum=self.bn_momentum, epsilon=BN_EPSILON, name=f"bn{i + 1}")
                for i in range(len(self.filters))]
    self.fc = nn.Dense(self.dense)
    self.classifier = nn.Dense(self.num_classes)
    self.drop = Dropout(self.dropout_rate)

  def trunk(self, x, train: bool = False, mask=None):
    h = x
    for conv, bn in zip(self.convs, self.bns):
      h = conv(h)
      h = nn.relu(bn(h, use_running_average=not train, mask=row_mask(mask, h) if train else None))
      h = max_pool(h, (2, 2), (2, 2), padding="SAME")
    return nn.relu(self.fc(h.reshape((h.shape[0], -1))))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    h = self.drop(h, deterministic=not _dropout_on(train, dropout))
    return self.classifier(h), h
