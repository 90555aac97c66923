r"""Converts torchvision's ResNet-18 weights to the `.npz` that `jaxal.models.load_pretrained` reads.

Not part of jaxal and not imported by it. Run it with any Python that has torch and torchvision
(jaxal itself is not needed there):

  <torch python> experiments/convert_torchvision_resnet.py --out=resnet18_imagenet.npz
      [--weights=IMAGENET1K_V1 | --state_dict=resnet18.pth]

then train with `--model=resnet18_imagenet --pretrained=resnet18_imagenet.npz` (the 1000-class
classifier is skipped when loading unless asked for). `--state_dict` reads a saved `state_dict`
(`torch.save(model.state_dict(), path)`) instead of downloading torchvision's weights.

Mapping (torchvision name -> jaxal key; `convert_state_dict` is a pure function over a
name -> numpy array dict, so it is tested without torch):

  conv1.weight                       -> params/stem_conv/kernel        OIHW -> HWIO
  bn1.{weight,bias}                  -> params/stem_bn/{scale,bias}
  bn1.{running_mean,running_var}     -> batch_stats/stem_bn/{mean,var}
  layerS.B.convK.weight              -> params/layerS_B/convK/kernel   (S 1..4, B 0..1, K 1..2)
  layerS.B.bnK.*                     -> params|batch_stats/layerS_B/bnK/*
  layerS.0.downsample.0.weight       -> params/layerS_0/downsample_conv/kernel
  layerS.0.downsample.1.*            -> params|batch_stats/layerS_0/downsample_bn/*
  fc.weight [out, in], fc.bias       -> params/classifier/kernel [in, out], params/classifier/bias
  *.num_batches_tracked              -> dropped (Flax keeps no step counter)

Batch norm agrees exactly in inference mode (same epsilon 1e-5; running_var is used as stored).
PyTorch updates running_var with the unbiased batch variance, Flax with the biased one, which only
matters when fine-tuning with small batches.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Mapping

import numpy as np

_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _module(name: str) -> str:
  """torchvision module path -> jaxal module path (e.g. "layer2.0.downsample.1" ->
  "layer2_0/downsample_bn")."""
  if name == "conv1":
    return "stem_conv"
  if name == "bn1":
    return "stem_bn"
  if name == "fc":
    return "classifier"
  m = re.fullmatch(r"layer([1-4])\.(\d+)\.(conv[12]|bn[12]|downsample\.[01])", name)
  if not m:
    raise KeyError(name)
  layer = {"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}.get(m[3], m[3])
  return f"layer{m[1]}_{m[2]}/{layer}"


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """torchvision ResNet-18 `state_dict` (name -> array) -> {jaxal flattened key: float32 array}.

  Raises:
    ValueError: names this mapping does not know (listed), or arrays of an unexpected rank.
  """
  out: dict[str, np.ndarray] = {}
  unknown = []
  for name, value in state_dict.items():
    value = np.asarray(value)
    if name.endswith("num_batches_tracked"):
      continue
    parent, _, leaf = name.rpartition(".")
    try:
      module = _module(parent)
    except KeyError:
      unknown.append(name)
      continue
    kind = module.rsplit("/", 1)[-1]
    if kind.endswith("conv") or re.fullmatch(r"conv[12]", kind):
      if leaf != "weight" or value.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D convolution weight [O, I, H, W], got "
                         f"{leaf} of shape {value.shape}.")
      out[f"params/{module}/kernel"] = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif module == "classifier":
      if leaf == "weight":
        if value.ndim != 2:
          raise ValueError(f"{name}: expected a 2-D weight [out, in], got shape {value.shape}.")
        out["params/classifier/kernel"] = value.T
      elif leaf == "bias":
        out["params/classifier/bias"] = value
      else:
        unknown.append(name)
    else:  # batch norm
      if leaf not in _BN:
        unknown.append(name)
        continue
      collection, key = _BN[leaf]
      out[f"{collection}/{module}/{key}"] = value
  if unknown:
    raise ValueError(f"convert_state_dict: not a torchvision ResNet-18 name: {sorted(unknown)}.")
  return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="Output .npz path.")
  parser.add_argument("--weights", default="IMAGENET1K_V1",
                      help="torchvision weights enum name for resnet18 (default IMAGENET1K_V1).")
  parser.add_argument("--state_dict", default="",
                      help="A saved resnet18 state_dict (.pth) to convert instead of --weights.")
  args = parser.parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel
  if args.state_dict:
    sd = torch.load(args.state_dict, map_location="cpu")
  else:
    import torchvision  # pylint: disable=import-outside-toplevel
    sd = torchvision.models.resnet18(weights=args.weights).state_dict()
  converted = convert_state_dict({k: v.detach().cpu().numpy() for k, v in sd.items()})
  np.savez(args.out, **converted)
  print(f"wrote {len(converted)} arrays to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
