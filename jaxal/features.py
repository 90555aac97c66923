"""Frozen or initialised encoders in the loop (`--train`, `--encoder`, `--features`).

`--train=linear` trains a head (`jaxal.models.Linear` or `MLPHead`) on embeddings instead of a
network on images: the pool's and the test set's inputs become standardised feature vectors
[N, 1, 1, D], either computed by a pretrained encoder (`--encoder=<encoder.npz>` written by
`jaxal-pretrain`, its trunk applied to the images) or read from `--features=<embeddings.npy>` made
elsewhere (rows: every training image, then every test image, in the dataset's order as loaded).
The heads' features are their inputs, so every strategy that clusters or measures distances
(hybrid, cluster annotation, TypiClust, ProbCover, core-set, k-means, BADGE) works on these
embeddings, and checkpoints, resumption and reports work unchanged. `--train=finetune` starts the
network from the encoder's weights at every (re)initialisation (the `pretrained` attribute of
jaxal's networks, `jaxal.training.init_variables`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import models
from jaxal.data import normalize
from jaxal.errors import ArgumentError
from jaxal.models.pretrained import load_pretrained
from jaxal.state import LabeledArrays

TRAIN_MODES = ("full", "linear", "finetune")


def encoder_info(path: str) -> dict:
  """The `encoder.json` written next to an `encoder.npz` by `jaxal-pretrain`."""
  info = os.path.splitext(path)[0] + ".json"
  if not os.path.isfile(path) or not os.path.isfile(info):
    raise ArgumentError(f"{{encoder}}: no encoder {path!r} with its {os.path.basename(info)} "
                        "beside it (written by jaxal-pretrain).")
  with open(info) as f:
    return json.load(f)


def validate(cfg: Mapping[str, Any]) -> None:
  """ArgumentError naming the setting for combinations of train / model / features / encoder that
  cannot work."""
  train, feats, enc = cfg.get("train", "full"), cfg.get("features", ""), cfg.get("encoder", "")
  if train not in TRAIN_MODES:
    raise ArgumentError(f"{{train}}: unknown value {train!r}; accepted: {', '.join(TRAIN_MODES)}.")
  if feats and enc:
    raise ArgumentError("{features} and {encoder} cannot be combined: give the embeddings or the "
                        "encoder that makes them.")
  head = cfg["model"] in models.HEADS
  if train == "full":
    if feats or enc:
      raise ArgumentError(f"{{{'features' if feats else 'encoder'}}} needs {{train}}=linear "
                          "(or finetune with an encoder).")
    if head:
      raise ArgumentError(f"{{model}}={cfg['model']} is a head on embeddings: set {{train}}=linear "
                          "with {features} or {encoder}.")
  if train == "linear":
    if not (feats or enc):
      raise ArgumentError("{train}=linear trains a head on embeddings: give {features} or "
                          "{encoder}.")
    if not head:
      raise ArgumentError(f"{{train}}=linear needs a head on embeddings as {{model}}, got "
                          f"{cfg['model']!r}; accepted: {', '.join(models.HEADS)}.")
  if train == "finetune":
    if not enc or feats:
      raise ArgumentError("{train}=finetune starts the network from {encoder}: give it (and no "
                          "{features}).")
    info = encoder_info(enc)
    if cfg["model"] != info["model"]:
      raise ArgumentError(f"{{model}}={cfg['model']} differs from the encoder's network "
                          f"{info['model']!r}; set {{model}}={info['model']}.")
  if enc:
    encoder_info(enc)
  if feats:
    if not os.path.isfile(feats):
      raise ArgumentError(f"{{features}}: no file {feats!r} (a .npy of [N_train + N_test, D]).")
    for key in ("classes", "class_map", "test_limit"):
      if cfg.get(key):
        raise ArgumentError(f"{{features}} holds the whole test split; it cannot be combined with "
                            f"{{{key}}}.")
    if cfg.get("noise", "none") != "none":
      raise ArgumentError("{features} are computed from clean images; it cannot be combined with "
                          "{noise}.")


def model_kwargs(cfg: Mapping[str, Any]) -> dict:
  """Extra arguments of the network: the encoder's weights with `--train=finetune`."""
  if cfg.get("train", "full") == "finetune":
    return {"pretrained": cfg["encoder"]}
  return {}


def embed(encoder: str, images: np.ndarray, batch: int = 1024) -> np.ndarray:
  """float32 [N, D]: the trunk of `encoder` (an encoder.npz) on uint8 images [N, H, W, C],
  normalised with the encoder's channel statistics."""
  info = encoder_info(encoder)
  net = models.get_model(info["model"], int(info["num_classes"]))
  sample = jnp.zeros((1,) + images.shape[1:], jnp.float32)
  variables = load_pretrained(jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), sample)),
                              encoder, skip_classifier=False)
  trunk = jax.jit(lambda v, x: net.apply(v, x, method="trunk").reshape((x.shape[0], -1)))
  return np.concatenate([
      np.asarray(trunk(variables, jnp.asarray(normalize(images[i:i + batch], info["channel_mean"],
                                                        info["channel_std"]))))
      for i in range(0, len(images), batch)]).astype(np.float32)


def _read_features(path: str, train_index: np.ndarray, n_test: int) -> tuple[np.ndarray, np.ndarray]:
  arr = np.load(path, mmap_mode="r")
  if arr.ndim != 2 or arr.shape[0] - n_test <= int(np.max(train_index)):
    raise ArgumentError(f"{{features}}: {path!r} has shape {arr.shape}; expected [N_train + "
                        f"N_test, D] with N_test = {n_test} and N_train > {int(np.max(train_index))}"
                        " (training images, then test images, in the dataset's order).")
  return (np.asarray(arr[np.asarray(train_index)], np.float32),
          np.asarray(arr[arr.shape[0] - n_test:], np.float32))


def frozen_inputs(cfg: Mapping[str, Any], ds, pool: LabeledArrays,
                  test: LabeledArrays) -> tuple[LabeledArrays, LabeledArrays]:
  """With `--train=linear`: pool and test whose inputs are the standardised embeddings
  [N, 1, 1, D] (statistics of the training split); otherwise pool and test unchanged."""
  if cfg.get("train", "full") != "linear":
    return pool, test
  if cfg.get("features"):
    train_x, test_x = _read_features(cfg["features"], ds.train_index, len(ds.y_test))
  else:
    train_x = embed(cfg["encoder"], ds.x_train)
    test_x = (embed(cfg["encoder"], ds.x_test) if len(ds.x_test)   # none: an unlabeled pool
              else np.zeros((0, train_x.shape[1]), train_x.dtype))
  mean, std = train_x.mean(0), train_x.std(0)
  std = np.where(std > 0, std, 1.0)
  as_input = lambda x: jnp.asarray(((x - mean) / std)[:, None, None, :], jnp.float32)
  return LabeledArrays(as_input(train_x), pool.y), LabeledArrays(as_input(test_x), test.y)


__all__ = ["TRAIN_MODES", "embed", "encoder_info", "frozen_inputs", "model_kwargs", "validate"]
