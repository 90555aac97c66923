"""A drop-in for `flax.linen.Conv` (2-D, NHWC) with a choice of implementation.

Why: on XLA:CPU a convolution is fast when a jitted function runs it directly, but a training step
that sits in a loop body (`lax.fori_loop`, `lax.scan`, `lax.while_loop`, `lax.map`) runs its
convolutions, and above all their gradients, tens of times slower. `jaxal.training.fit` trains in a
`fori_loop` and `predict` maps over chunks, so that is the path that matters.

`impl="im2col"` builds the patch matrix from the kh*kw shifted (strided) slices of the padded input,
stacks them and does one matmul with the kernel reshaped to [kh*kw*cin, cout]. Its autodiff gradient
is pads, slices and matmuls, which XLA:CPU runs fast inside loops too. `impl="xla"` is
`lax.conv_general_dilated`, exactly what `nn.Conv` does. `impl="rows"` lowers the convolution to one
wide matmul per output row block: the kh input rows an output row needs, side by side
[B*oh, kh*wp*cin], times a banded matrix built from the kernel [kh*wp*cin, ow*cout] (each kernel
row repeated along the band, zeros elsewhere). It does wp/kw times the multiply-adds of the direct
convolution, but as one large matmul: for a convolution with one or two input channels and a
narrow output (LeNet-5's first layer, 1 -> 6 channels) it is about 4x faster than XLA:CPU's own
(measured in BUILD_NOTES.md, issue 21). When `hybrid` trains with it, a wide output row is split
into tiles of a few columns (`row_tile`), each with a band only as wide as the tile needs, which
does fewer wasted multiply-adds and trains LeNet-5's first layer faster. `impl="hybrid"` runs,
when not differentiated, the faster of xla and rows for the layer's shape (`forward_impl`: rows
for at most `ROWS_MAX_IN` input and `ROWS_MAX_OUT` output channels, xla otherwise), and when
differentiated the lowering that trains fastest for the shape (`train_impl`: rows for at most
`ROWS_TRAIN_MAX_IN` input and `ROWS_TRAIN_MAX_OUT` output channels, LeNet-5's two layers; im2col
otherwise), forward and gradient via a custom VJP, so the forward pass's choice never changes
training. `impl="hybrid_xla"` is the
first hybrid (xla for every forward pass, im2col for every gradient), kept to compare results with.
`impl="auto"` (the default) picks hybrid on the CPU backend and xla elsewhere. The environment
variable `JAXAL_CONV_IMPL` (one of `IMPLS`), read at trace time, overrides the module's `impl` so
users and benchmarks can force one.

The lowerings add the same products in different orders, so their outputs agree to float32
rounding (a few ulps), not bit for bit. Which lowering trains a layer is part of the results: since
issue 21's change 4 (BUILD_NOTES.md) LeNet-5 trains with rows, other layers with im2col as before;
`JAXAL_CONV_IMPL=hybrid_xla` reproduces LeNet-5 runs made before change 1 (runs made between
changes 1 and 4 scored with rows and trained with im2col, and runs between changes 4 and 5 trained
the first layer in whole rows, which no setting selects now).

Parameters are the same as `nn.Conv`'s: `kernel` [kh, kw, cin, cout] and `bias` [cout], created in
the same order with the same default initialisers, so parameter trees (and initial values) match.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

IMPLS = ("auto", "xla", "im2col", "rows", "hybrid", "hybrid_xla")
ROWS_MAX_IN = 2     # input channels up to which hybrid's forward pass uses rows_conv
ROWS_MAX_OUT = 8    # output channels up to which hybrid's forward pass uses rows_conv
ROWS_TRAIN_MAX_IN = 8     # input channels up to which hybrid trains with rows_conv
ROWS_TRAIN_MAX_OUT = 16   # output channels up to which hybrid trains with rows_conv
ENV_VAR = "JAXAL_CONV_IMPL"

PaddingLike = str | int | Sequence[int | tuple[int, int]]


def resolve_impl(impl: str = "auto") -> str:
  """The implementation to trace now: `JAXAL_CONV_IMPL` if set, else `impl`; "auto" becomes
  "hybrid" on the CPU backend and "xla" on any other."""
  choice = os.environ.get(ENV_VAR, "").strip().lower() or impl
  if choice not in IMPLS:
    source = ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "impl"
    raise ValueError(f"{source}: unknown convolution implementation {choice!r}; accepted: "
                     f"{', '.join(IMPLS)}.")
  if choice == "auto":
    return "hybrid" if jax.default_backend() == "cpu" else "xla"
  return choice


def _pairs(padding: PaddingLike, in_hw: Sequence[int], kernel: Sequence[int],
           strides: Sequence[int]) -> list[tuple[int, int]]:
  """Explicit (low, high) padding per spatial dimension, as `lax.conv_general_dilated` means it."""
  if isinstance(padding, str):
    if padding.upper() not in ("SAME", "VALID"):
      raise ValueError(f"Conv: padding {padding!r} is not supported; use 'SAME', 'VALID', an int "
                       "or (low, high) pairs.")
    return [tuple(p) for p in lax.padtype_to_pads(tuple(in_hw), tuple(kernel), tuple(strides),
                                                   padding.upper())]
  if isinstance(padding, int):
    return [(padding, padding)] * len(kernel)
  out = []
  for p in padding:
    out.append((p, p) if isinstance(p, int) else (int(p[0]), int(p[1])))
  if len(out) != len(kernel):
    raise ValueError(f"Conv: padding {padding!r} must give one entry per spatial dimension.")
  return out


def _padded(x: jax.Array, kernel_shape: Sequence[int], strides: Sequence[int],
            pads: Sequence[tuple[int, int]]) -> tuple[jax.Array, int, int]:
  """(x zero-padded by `pads`, output height, output width) of a convolution; lax.pad also handles
  negative padding (cropping) like conv_general_dilated does."""
  kh, kw = kernel_shape[:2]
  (plo_h, phi_h), (plo_w, phi_w) = pads
  xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (plo_h, phi_h, 0), (plo_w, phi_w, 0),
                                          (0, 0, 0)))
  hp, wp = xp.shape[1], xp.shape[2]
  oh = (hp - kh) // strides[0] + 1
  ow = (wp - kw) // strides[1] + 1
  if oh <= 0 or ow <= 0:
    raise ValueError(f"Conv: kernel {kh}x{kw} does not fit the padded input {hp}x{wp}.")
  return xp, oh, ow


def im2col_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                pads: Sequence[tuple[int, int]], precision: Any = None) -> jax.Array:
  """2-D convolution of x [B, H, W, C] with kernel [kh, kw, C, F] by patches + one matmul.

  Patches are strided slices of the zero-padded input (no convolution op anywhere), stacked in
  (i, j, c) order so they line up with `kernel.reshape(kh * kw * C, F)`."""
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  xp, oh, ow = _padded(x, kernel.shape, strides, pads)
  b = xp.shape[0]
  if kh == 1 and kw == 1 and sh == 1 and sw == 1:
    cols = xp
  else:
    views = [lax.slice(xp, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, cin),
                       (1, sh, sw, 1))
             for i in range(kh) for j in range(kw)]
    cols = jnp.stack(views, axis=3)                       # [B, oh, ow, kh*kw, C]
  cols = cols.reshape((b * oh * ow, kh * kw * cin))
  y = jnp.dot(cols, kernel.reshape((kh * kw * cin, cout)), precision=precision)
  return y.reshape((b, oh, ow, cout))


def row_tile(ow: int, kw: int) -> int:
  """Output columns per tile when `hybrid` trains a layer with `rows_conv`: whole rows, unless a
  row is wide against the kernel (ow >= 4 * kw), then the largest divisor of ow that is at most
  kw - 1 (a band of kw - 1 + kw input columns instead of the whole padded row). Measured on
  LeNet-5 (BUILD_NOTES.md, issue 21, change 5): its first layer (28 output columns, 5x5 kernel)
  trains 6-7% faster a step in tiles of 4; its second (8 columns) is fastest in whole rows.
  Forward-only passes keep whole rows, which are as fast or faster there."""
  if ow < 4 * kw:
    return ow
  tile = max(d for d in range(1, max(kw - 1, 1) + 1) if ow % d == 0)
  return tile if tile >= 2 else ow


def rows_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
              pads: Sequence[tuple[int, int]], precision: Any = None,
              tile: int | str | None = None) -> jax.Array:
  """2-D convolution of x [B, H, W, C] with kernel [kh, kw, C, F] as one matmul of input row
  blocks by a banded kernel matrix (see the module docstring).

  Output columns are taken `tile` at a time (None: whole rows; "train": `row_tile`'s choice; else
  a divisor of the output width): output row i, columns [t*tile, (t+1)*tile), needs padded input
  rows i*sh + di (di < kh) at columns [t*tile*sw, t*tile*sw + tw), tw = (tile - 1)*sw + kw: those
  row pieces side by side are the left factor [B*oh*(ow/tile), kh*tw*C]. The right factor, the
  same for every tile, M[(di, k, c), (j, f)] is kernel[di, k - j*sw, c, f] where
  0 <= k - j*sw < kw and 0 elsewhere, built exactly (each entry one kernel value). In whole rows,
  tw is the padded width (the products of change 4, BUILD_NOTES.md, in the same order)."""
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  xp, oh, ow = _padded(x, kernel.shape, strides, pads)
  b = xp.shape[0]
  tile = ow if tile is None else row_tile(ow, kw) if tile == "train" else int(tile)
  if tile < 1 or ow % tile:
    raise ValueError(f"rows_conv: tile={tile} must divide the output width {ow}.")
  tiles, tw = ow // tile, xp.shape[2] if tile == ow else (tile - 1) * sw + kw
  rows = jnp.stack([lax.slice(xp, (0, i, t * tile * sw, 0),
                              (b, i + (oh - 1) * sh + 1, t * tile * sw + tw, cin), (1, sh, 1, 1))
                    for t in range(tiles) for i in range(kh)], axis=2)   # [B, oh, T*kh, tw, C]
  rows = rows.reshape((b * oh * tiles, kh * tw * cin))
  band = np.zeros((tw, tile, kw), np.float32)                  # band[k, j, dj] = [k == j*sw + dj]
  j, dj = np.meshgrid(np.arange(tile), np.arange(kw), indexing="ij")
  band[j * sw + dj, j, dj] = 1.0
  m = jnp.einsum("kjd,adcf->akcjf", jnp.asarray(band, kernel.dtype), kernel,
                 precision=lax.Precision.HIGHEST).reshape((kh * tw * cin, tile * cout))
  y = jnp.dot(rows, m, precision=precision)
  return y.reshape((b, oh, ow, cout))


def forward_impl(cin: int, cout: int) -> str:
  """The lowering hybrid uses for a forward-only pass of a cin -> cout convolution."""
  return "rows" if cin <= ROWS_MAX_IN and cout <= ROWS_MAX_OUT else "xla"


def train_impl(cin: int, cout: int) -> str:
  """The lowering hybrid differentiates for a cin -> cout convolution (forward and gradient)."""
  return "rows" if cin <= ROWS_TRAIN_MAX_IN and cout <= ROWS_TRAIN_MAX_OUT else "im2col"


def xla_conv(x, kernel, strides, pads, precision=None):
  return lax.conv_general_dilated(x, kernel, tuple(strides), [tuple(p) for p in pads],
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


LOWERINGS = {"xla": xla_conv, "im2col": im2col_conv, "rows": rows_conv}


def hybrid_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                pads: Sequence[tuple[int, int]], precision: Any = None,
                forward: str | None = None, train: str | None = None) -> jax.Array:
  """`forward` (default `forward_impl`'s choice) when not differentiated (forward-only passes, e.g.
  `predict` under `lax.map`), and exactly `train` (default `train_impl`'s choice: rows or im2col)
  when differentiated (custom VJP: that lowering's forward and its autodiff gradient of pads,
  slices and matmuls; the convolution gradients XLA:CPU would otherwise emit are what runs slowly
  inside loop bodies). Reverse mode only (no jvp / forward-mode autodiff)."""
  strides, pads = tuple(strides), tuple(tuple(p) for p in pads)
  cin, cout = kernel.shape[2], kernel.shape[3]
  lowering = LOWERINGS[train or train_impl(cin, cout)]
  if lowering is rows_conv:    # trains in `row_tile`'s tiles
    lowering = functools.partial(rows_conv, tile="train")
  differentiated = lambda x, k: lowering(x, k, strides, pads, precision)
  plain = LOWERINGS[forward or forward_impl(cin, cout)]

  @jax.custom_vjp
  def conv(x, kernel):
    return plain(x, kernel, strides, pads, precision)

  def fwd(x, kernel):
    return jax.vjp(differentiated, x, kernel)   # (output, vjp closure: a pytree of residuals)

  def bwd(vjp, g):
    return vjp(g)

  conv.defvjp(fwd, bwd)
  return conv(x, kernel)


class Conv(nn.Module):
  """2-D convolution over NHWC inputs, parameter-compatible with `flax.linen.Conv`.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw), or an int for a square kernel.
    strides: int or (sh, sw).
    padding: "SAME", "VALID", an int, or a sequence of ints / (low, high) pairs per spatial dim.
    use_bias: add a bias [features].
    impl: one of `IMPLS` (see the module docstring; `JAXAL_CONV_IMPL` overrides it).
  """
  features: int
  kernel_size: int | Sequence[int]
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  precision: Any = None
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros_init()
  impl: str = "auto"

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    strides = (self.strides,) * 2 if isinstance(self.strides, int) else tuple(self.strides)
    if len(ks) != 2 or len(strides) != 2:
      raise ValueError(f"Conv: only 2-D convolutions are supported, got kernel_size={ks}, "
                       f"strides={strides}.")
    # Like nn.Conv: flatten extra leading batch dims, add one to an unbatched input.
    batch_shape = inputs.shape[:-3]
    x = inputs.reshape((-1,) + inputs.shape[-3:])
    cin = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, ks + (cin, self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    pads = _pairs(self.padding, x.shape[1:3], ks, strides)
    fn = {**LOWERINGS, "hybrid": hybrid_conv,
          "hybrid_xla": functools.partial(hybrid_conv, forward="xla", train="im2col")}[
              resolve_impl(self.impl)]
    y = fn(x, kernel, strides, pads, self.precision)
    if bias is not None:
      y = y + bias
    return y.reshape(batch_shape + y.shape[1:])
