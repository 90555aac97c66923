"""ResNet-18 (He et al. 2016) in Flax Linen, with a 32x32 ("cifar") or an ImageNet stem.

    stem - layer1 (2 BasicBlocks, w) - layer2 (2, 2w, stride 2) - layer3 (2, 4w, stride 2)
         - layer4 (2, 8w, stride 2) - global average pool -> features [B, 8w]
         - dropout(dropout_rate) - classifier (dense C)

w = `width` (64 in the paper; tests use a few channels). Stems:
  "cifar":    conv 3x3 stride 1 - BN - ReLU, no max-pool (the usual ResNet-18 for 32x32 inputs).
  "imagenet": conv 7x7 stride 2 pad 3 - BN - ReLU - max-pool 3x3 stride 2 pad 1 (torchvision).

Everything matches torchvision's `resnet18` layer for layer (explicit symmetric padding as PyTorch
pads, convolutions without bias, 1x1 stride-s convolution + BN shortcuts where the shape changes,
kaiming-normal fan-out initialisation), so its ImageNet weights load into the "imagenet" stem
(`experiments/convert_torchvision_resnet.py`, `jaxal.models.load_pretrained`). With width 64 and
1000 classes the "imagenet" variant has torchvision's 11,689,512 parameters.

Batch norm: momentum 0.9 in Flax's convention (PyTorch's 0.1), epsilon 1e-5. Dropout: torchvision's
network has none; `dropout_rate` (default 0.5) puts one dropout layer between the pooled features
and the classifier so MC dropout (BALD with MC dropout, as the constrained-setting paper compares)
has something to sample. `dropout_rate=0.0` is torchvision's network exactly (MC dropout is then
refused by `jaxal.scoring.check_method`).

The trunk/head split is at that dropout: the whole convolutional network is the trunk (computed once
per input by MC dropout), the head is dropout + classifier. Call convention as in
`jaxal.models.networks` (`train`, `dropout`, and a row `mask` for batch statistics).

Variable names (flattened paths, as `load_pretrained` reads them): `stem_conv`, `stem_bn`,
`layer{1..4}_{0,1}/{conv1,bn1,conv2,bn2}`, `layer{2,3,4}_0/{downsample_conv,downsample_bn}`,
`classifier`; e.g. `params/layer2_0/conv1/kernel`, `batch_stats/stem_bn/mean`.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxal.models.conv import Conv
from jaxal.models.dropout import Dropout
from jaxal.models.networks import BN_EPSILON, BN_MOMENTUM, _dropout_on, _SplitBN, row_mask

STEMS = ("cifar", "imagenet")

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), an untruncated normal.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """PyTorch's symmetric padding k // 2 (SAME differs for stride 2 on even inputs)."""
  return ((k // 2, k // 2), (k // 2, k // 2))


class BasicBlock(nn.Module):
  """conv 3x3 (stride) - BN - ReLU - conv 3x3 - BN, plus the shortcut (identity, or conv 1x1 stride
  + BN when the stride or the width changes), then ReLU."""
  features: int
  strides: int = 1
  bn_momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, x, train: bool = False, mask=None):
    m = row_mask(mask, x) if train else None
    bn = lambda name: nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                                   epsilon=BN_EPSILON, name=name)
    h = Conv(self.features, (3, 3), self.strides, _pad(3), use_bias=False, kernel_init=conv_init,
             name="conv1")(x)
    h = nn.relu(bn("bn1")(h, mask=m))
    h = Conv(self.features, (3, 3), 1, _pad(3), use_bias=False, kernel_init=conv_init,
             name="conv2")(h)
    h = bn("bn2")(h, mask=m)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = Conv(self.features, (1, 1), self.strides, "VALID", use_bias=False, kernel_init=conv_init,
               name="downsample_conv")(x)
      x = bn("downsample_bn")(x, mask=m)
    return nn.relu(h + x)


class ResNet18(_SplitBN):
  """ResNet-18: BasicBlock x [2, 2, 2, 2], widths w-2w-4w-8w (see the module docstring).

  Attributes:
    num_classes: C.
    stem: "cifar" (3x3 stride 1, no max-pool; for 32x32 inputs) or "imagenet" (7x7 stride 2 +
      3x3 max-pool stride 2; for 224x224 inputs and torchvision's pretrained weights).
    width: channels of the first stage (64 in the paper).
    dropout_rate: dropout between the pooled features and the classifier (0 = none).
    bn_momentum: Flax's batch-norm momentum (0.9 = PyTorch's 0.1).
    pretrained: optional `.npz` path (`jaxal.models.load_pretrained`'s format): then
      `jaxal.training.init_variables` (and so every (re)initialisation in the AL loop) starts from
      its weights and running statistics with a fresh classifier. `model.init` alone ignores it.
  """
  num_classes: int
  stem: str = "cifar"
  width: int = 64
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  dropout_rate: float = 0.5
  bn_momentum: float = BN_MOMENTUM
  pretrained: str | None = None

  def setup(self):
    if self.stem not in STEMS:
      raise ValueError(f"resnet18: unknown stem {self.stem!r}; accepted: {', '.join(STEMS)} "
                       "(--model=resnet18 is the cifar stem, --model=resnet18_imagenet the "
                       "imagenet stem).")
    k = 3 if self.stem == "cifar" else 7
    self.stem_conv = Conv(self.width, (k, k), 1 if k == 3 else 2, _pad(k), use_bias=False,
                          kernel_init=conv_init)
    self.stem_bn = nn.BatchNorm(momentum=self.bn_momentum, epsilon=BN_EPSILON)
    blocks = []
    for i, size in enumerate(self.stage_sizes):
      for j in range(size):
        blocks.append(BasicBlock(self.width * 2 ** i, 2 if (i > 0 and j == 0) else 1,
                                 self.bn_momentum, name=f"layer{i + 1}_{j}"))
    self.blocks = blocks
    self.drop = Dropout(self.dropout_rate)
    self.classifier = nn.Dense(self.num_classes)

  def trunk(self, x, train: bool = False, mask=None):
    h = self.stem_conv(x)
    h = nn.relu(self.stem_bn(h, use_running_average=not train,
                             mask=row_mask(mask, h) if train else None))
    if self.stem == "imagenet":
      h = nn.max_pool(h, (3, 3), (2, 2), padding=_pad(3))
    for block in self.blocks:
      h = block(h, train, mask)
    return jnp.mean(h, axis=(1, 2))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    h = self.drop(h, deterministic=not _dropout_on(train, dropout))
    return self.classifier(h), h
