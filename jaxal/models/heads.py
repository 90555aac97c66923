"""Heads on frozen embeddings: the pool's inputs are feature vectors [N, 1, 1, D] (or [N, D]), not
images. Their "features" (what clustering and diversity strategies use) are the embeddings
themselves, so every strategy selects from the given representation, not from a learned one.
"""
from __future__ import annotations

import flax.linen as nn

from jaxal.models.dropout import Dropout


class Linear(nn.Module):
  """A linear softmax classifier (logistic regression) on the embeddings, starting from zero
  weights: with a few labels a random start would keep its random logits in every direction the
  labeled items do not span (with 10 labels in 128 dimensions, nearly all of them)."""
  num_classes: int

  def setup(self):
    self.classifier = nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros)

  def trunk(self, x, train: bool = False):
    return x.reshape((x.shape[0], -1))

  def head(self, h, train: bool = False, dropout: bool | None = None):
    return self.classifier(h), h

  def __call__(self, x, train: bool = False, dropout: bool | None = None):
    return self.head(self.trunk(x, train), train, dropout)


class MLPHead(Linear):
  """One hidden ReLU layer with dropout, then the classifier; features are still the embeddings."""
  hidden: int = 256
  dropout_rate: float = 0.25

  def setup(self):
    self.dense = nn.Dense(self.hidden)
    self.drop = Dropout(self.dropout_rate)
    self.classifier = nn.Dense(self.num_classes)

  def head(self, h, train: bool = False, dropout: bool | None = None):
    det = not (train if dropout is None else dropout)
    z = self.drop(nn.relu(self.dense(self.drop(h, deterministic=det))), deterministic=det)
    return self.classifier(z), h


__all__ = ["Linear", "MLPHead"]
