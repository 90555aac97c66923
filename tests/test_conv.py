import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import models, training
from jaxal.models import conv as conv_mod
from jaxal.models import networks
from jaxal.models.conv import Conv
from jaxal.state import TrainConfig

RTOL, ATOL = 1e-4, 1e-5


def _outputs_and_grads(modules, variables, x, ct):
  """For each module: output, and gradients of <output, ct> w.r.t. the params and the input (one
  jitted computation for all modules, to keep compile time down)."""
  def one(module):
    y, vjp = jax.vjp(lambda p, x: module.apply({"params": p}, x), variables["params"], x)
    return (y,) + vjp(ct)
  return jax.jit(lambda: [one(m) for m in modules])()


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 1), (0, 3))])
@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.slow
def test_im2col_matches_flax_conv_outputs_and_gradients(padding, kernel, stride):
  # batch sizes 1 and 5 and input channels 1 and 3 alternate over the kernel/stride cases, so each
  # padding mode sees both (one compile per case keeps the test fast)
  for batch, cin in [(5, 1) if (kernel + stride) % 2 else (1, 3)]:
    kx, kp, kc, kb = jax.random.split(jax.random.PRNGKey(kernel * 10 + stride), 4)
    x = jax.random.normal(kx, (batch, 7, 9, cin))       # odd, non-square sizes
    ours = Conv(4, (kernel, kernel), strides=stride, padding=padding, impl="im2col")
    hybrid, rows = ours.clone(impl="hybrid"), ours.clone(impl="rows")
    ref = nn.Conv(4, (kernel, kernel), strides=stride, padding=padding)
    v = ours.init(kp, x)
    # non-zero bias so the bias gradient and broadcast are exercised too
    v = {"params": {**v["params"], "bias": jax.random.normal(kb, (4,))}}
    ct = jax.random.normal(kc, jax.eval_shape(lambda: ref.apply(v, x)).shape)
    *ours_out, (y_r, gp_r, gx_r) = _outputs_and_grads([ours, hybrid, rows, ref], v, x, ct)
    for y, gp, gx in ours_out:
      assert y.shape == y_r.shape
      np.testing.assert_allclose(y, y_r, rtol=RTOL, atol=ATOL)
      np.testing.assert_allclose(gx, gx_r, rtol=RTOL, atol=ATOL)
      for name in ("kernel", "bias"):
        np.testing.assert_allclose(gp[name], gp_r[name], rtol=RTOL, atol=ATOL)


def test_params_match_flax_conv_names_shapes_and_initial_values():
  x = jnp.ones((2, 6, 6, 3))
  key = jax.random.PRNGKey(3)
  ours = Conv(8, (3, 3)).init(key, x)
  ref = nn.Conv(8, (3, 3)).init(key, x)
  assert jax.tree.structure(ours) == jax.tree.structure(ref)
  jax.tree.map(np.testing.assert_array_equal, ours, ref)
  no_bias = Conv(8, (3, 3), use_bias=False).init(key, x)
  assert set(no_bias["params"]) == {"kernel"}


def test_unbatched_input_and_no_bias_match_flax():
  x = jax.random.normal(jax.random.PRNGKey(0), (7, 9, 2))
  ours = Conv(3, 3, padding="SAME", use_bias=False, impl="im2col")
  v = ours.init(jax.random.PRNGKey(1), x)
  y = ours.apply(v, x)
  assert y.shape == (7, 9, 3)
  np.testing.assert_allclose(y, nn.Conv(3, (3, 3), use_bias=False).apply(v, x), rtol=RTOL,
                             atol=ATOL)


def test_im2col_traces_no_convolution_even_in_its_gradient():
  x = jnp.ones((2, 8, 8, 3))
  m = Conv(4, (3, 3), strides=2, impl="im2col")
  v = m.init(jax.random.PRNGKey(0), x)
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda p, x: jnp.sum(m.apply({"params": p}, x)),
                                      argnums=(0, 1)))(v["params"], x))
  assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr
  xla_jaxpr = str(jax.make_jaxpr(Conv(4, (3, 3), impl="xla").apply)(v, x))
  assert "conv_general_dilated" in xla_jaxpr
  # hybrid: XLA's convolution when only evaluated, no convolution at all once differentiated
  h = Conv(4, (3, 3), strides=2, impl="hybrid")
  assert "conv_general_dilated" in str(jax.make_jaxpr(h.apply)(v, x))
  hgrad = jax.make_jaxpr(jax.grad(lambda p, x: jnp.sum(h.apply({"params": p}, x)),
                                  argnums=(0, 1)))(v["params"], x)
  assert "conv_general_dilated" not in str(hgrad)
  # hybrid's forward pass of a one-channel, narrow convolution (LeNet-5's first) is the row
  # lowering: a matmul, no convolution; hybrid_xla keeps XLA's convolution there
  x1 = jnp.ones((2, 8, 8, 1))
  one = Conv(6, (5, 5), impl="hybrid")
  v1 = one.init(jax.random.PRNGKey(0), x1)
  assert "conv_general_dilated" not in str(jax.make_jaxpr(one.apply)(v1, x1))
  assert "conv_general_dilated" in str(jax.make_jaxpr(one.clone(impl="hybrid_xla").apply)(v1, x1))
  assert conv_mod.forward_impl(1, 6) == "rows" and conv_mod.forward_impl(6, 16) == "xla"
  assert conv_mod.forward_impl(1, 32) == "xla" and conv_mod.forward_impl(3, 32) == "xla"


@pytest.mark.parametrize("cin,cout,expected", [(1, 6, "rows"), (6, 16, "rows"), (1, 32, "im2col"),
                                               (3, 32, "im2col")])
def test_hybrid_trains_with_train_impls_lowering_exactly(cin, cout, expected):
  # LeNet-5's layers (1 -> 6, 6 -> 16) train with the row lowering, wider ones with im2col; the
  # differentiated hybrid is that lowering bit for bit (outputs and both gradients), and hybrid_xla
  # keeps im2col for every layer
  assert conv_mod.train_impl(cin, cout) == expected
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 12, 12, cin))
  k = jax.random.normal(jax.random.PRNGKey(1), (5, 5, cin, cout)) * 0.2
  ct = jax.random.normal(jax.random.PRNGKey(2), (3, 8, 8, cout))
  pads = ((0, 0), (0, 0))
  lowering = {"rows": conv_mod.rows_conv, "im2col": conv_mod.im2col_conv}

  def vjp_of(f):
    y, back = jax.vjp(lambda x, k: f(x, k, (1, 1), pads), x, k)
    return (y,) + back(ct)
  hybrid = jax.jit(lambda: vjp_of(conv_mod.hybrid_conv))()
  exact = jax.jit(lambda: vjp_of(lowering[expected]))()
  old = jax.jit(lambda: vjp_of(lambda *a: conv_mod.hybrid_conv(*a, forward="xla",
                                                                train="im2col")))()
  im2col = jax.jit(lambda: vjp_of(conv_mod.im2col_conv))()
  for a, b in zip(hybrid, exact):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(old[1:], im2col[1:]):
    np.testing.assert_array_equal(a, b)
  # and the row lowering's gradients are the convolution's (float64 numpy reference)
  ref = _numpy_conv(np.asarray(x, np.float64), np.asarray(k, np.float64), 1, pads)
  np.testing.assert_allclose(exact[0], ref, rtol=1e-5, atol=1e-5)
  xs, cts = np.asarray(x, np.float64), np.asarray(ct, np.float64)
  dk = np.stack([np.stack([np.einsum("bhwc,bhwf->cf", xs[:, i:i + 8, j:j + 8], cts)
                           for j in range(5)]) for i in range(5)])
  np.testing.assert_allclose(exact[2], dk, rtol=1e-4, atol=1e-4)


def _numpy_conv(x, k, stride, pads):
  """Direct convolution in float64: y[b, i, j, f] = sum over (di, dj, c) of
  xpad[b, i*s + di, j*s + dj, c] * k[di, dj, c, f]."""
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  kh, kw, _, f = k.shape
  oh = (xp.shape[1] - kh) // stride + 1
  ow = (xp.shape[2] - kw) // stride + 1
  y = np.zeros((x.shape[0], oh, ow, f))
  for i in range(oh):
    for j in range(ow):
      patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
      y[:, i, j] = np.einsum("bhwc,hwcf->bf", patch, np.asarray(k, np.float64))
  return y


@pytest.mark.parametrize("shape,kernel,stride,pads", [
    ((3, 28, 28, 1), (5, 5, 1, 6), 1, ((2, 2), (2, 2))),      # LeNet-5's first layer
    ((2, 14, 14, 6), (5, 5, 6, 16), 1, ((0, 0), (0, 0))),     # its second
    ((2, 9, 7, 2), (3, 4, 2, 3), 2, ((1, 0), (2, 1))),        # strided, uneven padding
])
def test_rows_conv_matches_a_direct_numpy_convolution(shape, kernel, stride, pads):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  k = jax.random.normal(jax.random.PRNGKey(1), kernel)
  y = jax.jit(lambda x, k: conv_mod.rows_conv(x, k, (stride, stride), pads))(x, k)
  np.testing.assert_allclose(y, _numpy_conv(x, k, stride, pads), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,kernel,stride,pads,tiles", [
    ((3, 28, 28, 1), (5, 5, 1, 6), 1, ((2, 2), (2, 2)), (4, 7, 28)),   # LeNet-5's first layer
    ((2, 9, 7, 2), (3, 4, 2, 3), 2, ((1, 0), (2, 1)), (1, 2, 4)),                 # strided, uneven
])
def test_rows_conv_in_tiles_matches_numpy_in_value_and_gradients(shape, kernel, stride, pads,
                                                                  tiles):
  # Any tile width that divides the output row gives the convolution and its gradients
  # (float64 numpy references: the direct sum, and the input / kernel gradients written out).
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  k = jax.random.normal(jax.random.PRNGKey(1), kernel)
  ref = _numpy_conv(x, k, stride, pads)
  ct = np.asarray(jax.random.normal(jax.random.PRNGKey(2), ref.shape), np.float64)
  kh, kw = kernel[:2]
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
  dk, dxp = np.zeros(kernel), np.zeros_like(xp)
  for i in range(ref.shape[1]):
    for j in range(ref.shape[2]):
      patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
      dk += np.einsum("bhwc,bf->hwcf", patch, ct[:, i, j])
      dxp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :] += np.einsum(
          "hwcf,bf->bhwc", np.asarray(k, np.float64), ct[:, i, j])
  dx = dxp[:, pads[0][0]:pads[0][0] + shape[1], pads[1][0]:pads[1][0] + shape[2]]
  for tile in tiles:
    @jax.jit
    def value_and_grads(x, k, ct, t=tile):
      y, back = jax.vjp(lambda x, k: conv_mod.rows_conv(x, k, (stride, stride), pads, tile=t), x, k)
      return (y,) + back(ct)
    y, gx, gk = value_and_grads(x, k, jnp.asarray(ct, jnp.float32))
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=f"tile {tile}")
    np.testing.assert_allclose(gx, dx, rtol=1e-4, atol=1e-4, err_msg=f"tile {tile}")
    np.testing.assert_allclose(gk, dk, rtol=1e-4, atol=1e-4, err_msg=f"tile {tile}")
  with pytest.raises(ValueError, match=r"tile=3 must divide the output width"):
    conv_mod.rows_conv(x, k, (stride, stride), pads, tile=3)


def test_hybrid_trains_lenet5_first_layer_in_tiles_and_scores_in_whole_rows():
  # differentiated: rows_conv in row_tile's tiles (4 columns), bit for bit; forward only: whole
  # rows, bit for bit (so scoring and evaluation are those of change 4)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 28, 28, 1))
  k = jax.random.normal(jax.random.PRNGKey(1), (5, 5, 1, 6)) * 0.2
  ct = jax.random.normal(jax.random.PRNGKey(2), (3, 28, 28, 6))
  pads = ((2, 2), (2, 2))

  def vjp_of(f):
    y, back = jax.vjp(lambda x, k: f(x, k, (1, 1), pads), x, k)
    return (y,) + back(ct)
  hybrid = jax.jit(lambda: vjp_of(conv_mod.hybrid_conv))()
  tiled = jax.jit(lambda: vjp_of(lambda *a: conv_mod.rows_conv(*a, tile=4)))()
  for a, b in zip(hybrid, tiled):
    np.testing.assert_array_equal(a, b)
  forward = jax.jit(lambda x, k: conv_mod.hybrid_conv(x, k, (1, 1), pads))(x, k)
  whole = jax.jit(lambda x, k: conv_mod.rows_conv(x, k, (1, 1), pads))(x, k)
  np.testing.assert_array_equal(forward, whole)


def test_row_tile_splits_wide_rows_only():
  # LeNet-5's first layer (28 output columns, 5x5): tiles of 4; its second (8 columns): whole rows
  assert conv_mod.row_tile(28, 5) == 4 and conv_mod.row_tile(8, 5) == 8
  assert conv_mod.row_tile(30, 5) == 3 and conv_mod.row_tile(12, 3) == 2
  assert conv_mod.row_tile(29, 5) == 29      # a prime width: no tile of 2 or more divides it


def test_impl_selection_env_var_and_auto(monkeypatch):
  monkeypatch.delenv(conv_mod.ENV_VAR, raising=False)
  expected_auto = "hybrid" if jax.default_backend() == "cpu" else "xla"
  assert conv_mod.resolve_impl("auto") == expected_auto
  assert conv_mod.resolve_impl("xla") == "xla"
  monkeypatch.setenv(conv_mod.ENV_VAR, "XLA")
  assert conv_mod.resolve_impl("im2col") == "xla"
  monkeypatch.setenv(conv_mod.ENV_VAR, "fft")
  with pytest.raises(ValueError, match="JAXAL_CONV_IMPL: unknown convolution implementation 'fft'"):
    conv_mod.resolve_impl("auto")
  monkeypatch.delenv(conv_mod.ENV_VAR)
  with pytest.raises(ValueError, match="accepted: auto, xla, im2col, rows, hybrid, hybrid_xla"):
    conv_mod.resolve_impl("winograd")


@pytest.mark.parametrize("name,shape", [("lenet5", (16, 16, 3)), ("cnn3", (12, 12, 3)),
                                        ("gal_cnn", (14, 14, 1))])
@pytest.mark.slow
def test_networks_keep_flax_param_trees_and_agree_across_impls(name, shape, monkeypatch):
  model = models.get_model(name, 10)
  x = jax.random.normal(jax.random.PRNGKey(0), (3,) + shape)
  v = model.init(jax.random.PRNGKey(1), x)
  # the same network built with flax.linen.Conv has the identical parameter tree and values
  monkeypatch.setattr(networks, "Conv", nn.Conv)
  v_flax = model.init(jax.random.PRNGKey(1), x)
  assert jax.tree.structure(v) == jax.tree.structure(v_flax)
  jax.tree.map(np.testing.assert_array_equal, v, v_flax)
  logits_flax = jax.jit(model.apply)(v, x)[0]
  monkeypatch.undo()
  out = {}
  for impl in ("xla", "im2col", "rows", "hybrid", "hybrid_xla"):
    monkeypatch.setenv(conv_mod.ENV_VAR, impl)
    out[impl] = jax.jit(lambda v, x: model.apply(v, x)[0])(v, x)  # new function: traced anew
  for impl in ("im2col", "rows", "hybrid"):
    np.testing.assert_allclose(out[impl], out["xla"], rtol=RTOL, atol=ATOL)
  np.testing.assert_array_equal(out["hybrid_xla"], out["xla"])   # its forward is XLA's conv
  np.testing.assert_allclose(out["xla"], logits_flax, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_scan_of_train_steps_gives_the_same_params_with_both_impls(monkeypatch):
  model = models.get_model("cnn3", 4, filters=(4, 8, 8), dense=(16,))
  # SGD, not Adam: Adam's normalisation turns rounding noise in near-zero gradients into full steps
  cfg = TrainConfig(batch_size=8, optimizer="sgd", learning_rate=0.05, momentum=0.9)
  tx = training.make_optimizer(cfg)
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (3, 8, 8, 8, 1))
  y = jax.random.randint(ky, (3, 8), 0, 4)
  w = jnp.ones(8)
  v0 = training.init_variables(model, jax.random.PRNGKey(1), x[0])
  o0 = tx.init(v0["params"])

  def make_run():  # a new function per impl, so jit traces again and reads the env var again
    def run(v, o):
      def body(c, xs):
        xb, yb, i = xs
        v, o, loss = training.train_step(model, tx, *c, xb, yb, w, jax.random.PRNGKey(i))
        return (v, o), loss
      return jax.lax.scan(body, (v, o), (x, y, jnp.arange(3)))
    return jax.jit(run)

  res = {}
  for impl in ("xla", "im2col", "hybrid"):
    monkeypatch.setenv(conv_mod.ENV_VAR, impl)
    res[impl] = make_run()(v0, o0)
  (v_x, _), loss_x = res["xla"]
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), v_x["params"], v0["params"])
  assert max(jax.tree.leaves(moved)) > 1e-3      # training really changed the params
  for impl in ("im2col", "hybrid"):
    (v_i, _), loss_i = res[impl]
    np.testing.assert_allclose(loss_i, loss_x, rtol=RTOL, atol=ATOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 v_i["params"], v_x["params"])
