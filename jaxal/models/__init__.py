"""Model registry: names used by the command line and presets map to Flax Linen modules."""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn

from jaxal.errors import ArgumentError

from jaxal.models.dropout import Dropout, keep_mask
from jaxal.models.heads import Linear, MLPHead
from jaxal.models.networks import CNN2BN, CNN3, GalCNN, LeNet5, MLP
from jaxal.models.pretrained import flatten_variables, load_pretrained, save_pretrained
from jaxal.models.resnet import BasicBlock, ResNet18

# How dropout masks are drawn (recorded in a run's config.json; see jaxal.models.dropout).
DROPOUT_MASKS = "packed"

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "lenet5": LeNet5,
    "cnn3": CNN3,
    "gal_cnn": GalCNN,
    "gal_cnn_code": functools.partial(GalCNN, kernel=3, pool=5, hidden=256),
    "cnn2_bn": CNN2BN,
    "resnet18": functools.partial(ResNet18, stem="cifar"),
    "resnet18_imagenet": functools.partial(ResNet18, stem="imagenet"),
    # heads on frozen embeddings (--train=linear): their features are the embeddings
    "linear": Linear,
    "mlp_head": MLPHead,
}
HEADS = ("linear", "mlp_head")


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """Builds the registered model `name` for `num_classes` classes (kwargs go to the module)."""
  if name not in MODELS:
    raise ArgumentError(f"{{model}}: unknown model {name!r}; accepted: "
                        f"{', '.join(sorted(MODELS))}.")
  return MODELS[name](num_classes=num_classes, **kwargs)


__all__ = ["HEADS", "MODELS", "get_model", "Linear", "MLPHead", "MLP", "LeNet5", "CNN3", "GalCNN", "CNN2BN", "ResNet18",
           "BasicBlock", "Dropout", "flatten_variables", "keep_mask", "load_pretrained",
           "save_pretrained"]
