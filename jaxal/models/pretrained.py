"""Pretrained weights as `.npz` files of arrays keyed by the flattened Flax variable path.

A key is the collection and the module path joined by "/", e.g. `params/stem_conv/kernel`,
`params/layer1_0/bn1/scale`, `batch_stats/stem_bn/mean`. `flatten_variables` / `save_pretrained`
write such a file from any model's variables; `experiments/convert_torchvision_resnet.py` writes one
from torchvision's ResNet-18 weights; `load_pretrained` reads one into a model's variables.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.core import unfreeze

CLASSIFIER = "classifier"


def flatten_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
  """{"params/stem_conv/kernel": leaf, ...}: every leaf keyed by its "/"-joined path."""
  return traverse_util.flatten_dict(unfreeze(variables), sep="/")


def save_pretrained(variables: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Writes `variables` as an `.npz` in `load_pretrained`'s format."""
  np.savez(path, **{k: np.asarray(v) for k, v in flatten_variables(variables).items()})


@functools.lru_cache(maxsize=4)
def _read_npz(path: str, mtime_ns: int, size: int) -> dict[str, np.ndarray]:
  """The arrays of an `.npz` (cached by path, modification time and size: a rewritten file is read
  again)."""
  del mtime_ns, size
  with np.load(path, allow_pickle=False) as f:
    arrays = {k: f[k] for k in f.files}
  for a in arrays.values():
    a.setflags(write=False)
  return arrays


def _is_classifier(key: str) -> bool:
  return CLASSIFIER in key.split("/")[1:]


def load_pretrained(variables: Mapping[str, Any], path: str | os.PathLike | Mapping[str, Any], *,
                    skip_classifier: bool = True) -> dict[str, Any]:
  """`variables` with every array replaced by the one stored under its flattened path in `path`.

  Args:
    variables: the model's variables (e.g. from `jaxal.training.init_variables`); leaves may be
      arrays or `jax.ShapeDtypeStruct`s (only their shapes and dtypes are read).
    path: an `.npz` file (or a mapping key -> array, e.g. a converter's output).
    skip_classifier: keep the layer named "classifier" from `variables` (a new task's classes) and
      ignore the file's classifier arrays; False loads the classifier too.
  Returns:
    New variables of the same structure; loaded arrays are cast to the dtype of the leaf they
    replace.
  Raises:
    ValueError: keys of the model missing from the file, keys of the file the model does not have
      (both listed), or an array whose shape differs (naming the key, expected and found shapes).
  """
  where = f"load_pretrained({os.fspath(path)!r})" if not isinstance(path, Mapping) else \
      "load_pretrained"
  if isinstance(path, Mapping):
    stored = dict(path)
  else:
    try:
      stat = os.stat(path)
    except FileNotFoundError as e:
      raise ValueError(f"{where}: no such file (--pretrained).") from e
    stored = _read_npz(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)
  flat = flatten_variables(variables)
  wanted = {k for k in flat if not (skip_classifier and _is_classifier(k))}
  given = {k for k in stored if not (skip_classifier and _is_classifier(k))}
  missing, unexpected = sorted(wanted - given), sorted(given - wanted)
  if missing or unexpected:
    raise ValueError(f"{where}: the file does not match the model. Missing keys (in the model, "
                     f"not in the file): {missing or 'none'}. Unexpected keys (in the file, not in "
                     f"the model): {unexpected or 'none'}.")
  bad = [f"{k}: expected shape {tuple(flat[k].shape)}, found {tuple(np.shape(stored[k]))}"
         for k in sorted(wanted) if tuple(np.shape(stored[k])) != tuple(flat[k].shape)]
  if bad:
    raise ValueError(f"{where}: shape mismatch for {len(bad)} key(s): " + "; ".join(bad) + ".")
  out = {k: (jnp.asarray(stored[k], dtype=flat[k].dtype) if k in wanted else flat[k])
         for k in flat}
  return traverse_util.unflatten_dict(out, sep="/")


__all__ = ["flatten_variables", "load_pretrained", "save_pretrained"]
