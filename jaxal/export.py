"""A trained network as a folder anyone can load and predict with, without the run that made it:

    model = jaxal.load_model("runs/label/export/model")
    model.predict(["scan_0412.png", "scan_0413.png"])   # -> ["benign", "malignant"]

The folder holds `model.json` (the model's name, class names, image shape, normalisation and how
predictions are made) and `variables/` (an orbax checkpoint of the network's variables).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import models, reporting, scoring
from jaxal.errors import ArgumentError

FORMAT = "jaxal-model-1"


def export_model(path: str, *, model: str, variables: Any, class_names: Sequence[str],
                 image_shape: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 method: str = "deterministic", members: int = 0,
                 info: dict | None = None) -> str:
  """Writes the network `model` (a name of `jaxal.models.MODELS`) with `variables` (with a leading
  axis of `members` for an ensemble) to the folder `path` (replaced whole, atomically: written beside it, then renamed). Returns `path`."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  from jaxal import checkpointing  # pylint: disable=import-outside-toplevel
  path = os.path.abspath(path)
  tmp = path + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  with checkpointing._quiet_orbax():  # pylint: disable=protected-access
    ckptr = ocp.StandardCheckpointer()
    ckptr.save(os.path.join(tmp, "variables"), jax.device_get(variables))
    ckptr.wait_until_finished()
    ckptr.close()
  meta = {"format": FORMAT, "model": model, "class_names": list(class_names),
          "image_shape": [int(v) for v in image_shape], "mean": [float(v) for v in mean],
          "std": [float(v) for v in std], "method": method, "members": int(members),
          **(info or {})}
  reporting.write_json_atomic(os.path.join(tmp, "model.json"), meta)
  old = path + ".old"
  shutil.rmtree(old, ignore_errors=True)
  if os.path.exists(path):
    os.replace(path, old)
  os.replace(tmp, path)
  shutil.rmtree(old, ignore_errors=True)
  return path


class Predictor:
  """A loaded network: `predict(images)` gives class names, `predict_proba(images)` [N, C].
  `images` are uint8 [N, H, W, C] arrays of the model's image shape, or image file paths (read,
  converted to the model's channels and resized to its size)."""

  def __init__(self, meta: dict, variables: Any):
    self.meta = meta
    self.class_names = tuple(meta["class_names"])
    self.image_shape = tuple(meta["image_shape"])
    self.module = models.get_model(meta["model"], len(self.class_names))
    self.variables = variables
    mean = jnp.asarray(meta["mean"], jnp.float32)
    std = jnp.asarray(meta["std"], jnp.float32)
    method = meta.get("method", "deterministic")
    self._probs = jax.jit(lambda x: scoring.mean_probs(
        self.module, self.variables, (x.astype(jnp.float32) / 255.0 - mean) / std, method))

  def _arrays(self, images) -> np.ndarray:
    if isinstance(images, np.ndarray):
      x = images[..., None] if images.ndim == 3 else images
    else:
      x = np.stack([self._read(p) for p in images]) if len(images) else np.zeros(
          (0, *self.image_shape), np.uint8)
    if x.dtype != np.uint8 or tuple(x.shape[1:]) != self.image_shape:
      raise ArgumentError(f"{{images}} must be uint8 [N, {', '.join(map(str, self.image_shape))}]"
                          f" or image file paths, got {x.dtype} {tuple(x.shape)}.")
    return x

  def _read(self, path: str) -> np.ndarray:
    from PIL import Image  # pylint: disable=import-outside-toplevel
    h, w, c = self.image_shape
    with Image.open(path) as im:
      im = im.convert("RGB" if c == 3 else "L").resize((w, h), Image.BILINEAR)
      arr = np.asarray(im, np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr

  def predict_proba(self, images) -> np.ndarray:
    x = self._arrays(images)
    return np.asarray(self._probs(jnp.asarray(x))) if len(x) else np.zeros(
        (0, len(self.class_names)), np.float32)

  def predict(self, images) -> list[str]:
    return [self.class_names[int(c)] for c in self.predict_proba(images).argmax(-1)]


def load_model(path: str) -> Predictor:
  """The network exported to the folder `path` (`export_model`)."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  from jaxal import checkpointing  # pylint: disable=import-outside-toplevel
  meta_path = os.path.join(path, "model.json")
  if not os.path.isfile(meta_path):
    raise ArgumentError(f"{{path}} {path!r} holds no exported model (no model.json).")
  with open(meta_path) as f:
    meta = json.load(f)
  if meta.get("format") != FORMAT:
    raise ArgumentError(f"{{path}} {path!r}: unknown format {meta.get('format')!r}.")
  from jaxal import training  # pylint: disable=import-outside-toplevel
  module = models.get_model(meta["model"], len(meta["class_names"]))
  sample = jnp.zeros((1, *meta["image_shape"]), jnp.float32)
  init = lambda k: training.init_variables(module, k, sample)
  members = int(meta.get("members", 0))
  like = jax.eval_shape(lambda: jax.vmap(init)(jax.random.split(jax.random.PRNGKey(0), members))
                        if members else init(jax.random.PRNGKey(0)))
  with checkpointing._quiet_orbax():  # pylint: disable=protected-access
    ckptr = ocp.StandardCheckpointer()
    variables = ckptr.restore(os.path.abspath(os.path.join(path, "variables")), like)
    ckptr.close()
  return Predictor(meta, variables)
