"""ResNet-18 (both stems), pretrained weights (`load_pretrained`) and the torchvision converter."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.convert_torchvision_resnet import convert_state_dict
from jaxal import models, scoring
from jaxal.round import init_model

W = 4  # channels of the first stage in tests (64 in the paper)


def _init(name, classes=3, width=W, shape=(16, 16, 3), seed=0, **kw):
  model = models.get_model(name, classes, width=width, **kw)
  x = jax.random.normal(jax.random.PRNGKey(100), (2,) + shape)
  return model, model.init(jax.random.PRNGKey(seed), x), x


def _count(tree):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,params", [("resnet18_imagenet", 11_689_512),
                                         ("resnet18", 11_681_832)])
def test_full_width_parameter_count_matches_torchvision(name, params):
  # torchvision.models.resnet18() has 11,689,512 parameters (1000 classes); the 32x32 stem trades
  # the 7x7x3x64 stem kernel for a 3x3x3x64 one: 11,689,512 - 64*3*49 + 64*3*9.
  model = models.get_model(name, 1000)
  v = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3))))
  assert _count(v["params"]) == params
  assert _count(v["batch_stats"]) == 2 * 4800  # mean and var of the 4800 BN channels


@pytest.mark.parametrize("name,stem_kernel,pooled", [("resnet18", 3, 16 // 8),  # 16x16 inputs
                                                      ("resnet18_imagenet", 7, 1)])
@pytest.mark.slow
def test_stems_and_stages_have_the_published_shapes(name, stem_kernel, pooled):
  model, v, x = _init(name)
  p = v["params"]
  assert p["stem_conv"]["kernel"].shape == (stem_kernel, stem_kernel, 3, W)
  assert "bias" not in p["stem_conv"]
  for s, c in enumerate([W, 2 * W, 4 * W, 8 * W], start=1):
    assert p[f"layer{s}_1"]["conv2"]["kernel"].shape == (3, 3, c, c)
    assert ("downsample_conv" in p[f"layer{s}_0"]) == (s > 1)
  assert p["layer3_0"]["downsample_conv"]["kernel"].shape == (1, 1, 2 * W, 4 * W)
  _, st = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  out = st["intermediates"]["layer4_1"]["__call__"][0]
  assert out.shape == (2, pooled, pooled, 8 * W)


@pytest.mark.parametrize("name", ["resnet18", "resnet18_imagenet"])
@pytest.mark.slow
def test_logits_are_the_classifier_of_the_pooled_features(name):
  model, v, x = _init(name)
  logits, features = model.apply(v, x)
  assert logits.shape == (2, 3) and features.shape == (2, 8 * W)
  _, st = model.apply(v, x, capture_intermediates=True, mutable=["intermediates"])
  last = st["intermediates"]["layer4_1"]["__call__"][0]
  np.testing.assert_allclose(features, np.mean(last, axis=(1, 2)), rtol=1e-5, atol=1e-6)
  c = v["params"]["classifier"]
  np.testing.assert_allclose(features @ c["kernel"] + c["bias"], logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_head_of_trunk_is_the_whole_network_and_dropout_acts_only_when_asked():
  model, v, x = _init("resnet18")
  assert model.dropout_rate == 0.5 and scoring.has_dropout(model)
  h = model.apply(v, x, method="trunk")
  rng = {"dropout": jax.random.PRNGKey(4)}
  split = model.apply(v, h, dropout=True, method="head", rngs=rng)[0]
  whole = model.apply(v, x, dropout=True, rngs=rng)[0]
  np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-6)
  other = model.apply(v, x, dropout=True, rngs={"dropout": jax.random.PRNGKey(5)})[0]
  assert not np.allclose(whole, other)
  np.testing.assert_array_equal(model.apply(v, x)[0], model.apply(v, x, train=False)[0])


def test_dropout_rate_zero_is_refused_by_mc_dropout():
  model = models.get_model("resnet18", 3, width=W, dropout_rate=0.0)
  with pytest.raises(ValueError, match="mc_dropout needs a network with dropout"):
    scoring.check_method(model, "mc_dropout")


def test_unknown_stem_names_the_accepted_ones():
  model = models.get_model("resnet18", 3, width=W, stem="vgg")
  with pytest.raises(ValueError, match="resnet18: unknown stem 'vgg'; accepted: cifar, imagenet"):
    model.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))


def test_eval_mode_rows_are_independent_train_mode_uses_the_batch():
  model, v, x = _init("resnet18")
  v = {**v, "batch_stats": jax.tree.map(lambda a: a + 0.3, v["batch_stats"])}
  np.testing.assert_allclose(model.apply(v, x)[0][:1], model.apply(v, x[:1])[0], rtol=1e-4,
                             atol=1e-5)
  a, _ = model.apply(v, x, train=True, dropout=False, mutable=["batch_stats"])
  b, _ = model.apply(v, x[:1], train=True, dropout=False, mutable=["batch_stats"])
  assert not np.allclose(a[0][:1], b[0])


# ---------------------------------------------------------------------------------------------
# Pretrained weights

def _randomise_stats(v, seed):
  rng = np.random.default_rng(seed)
  stats = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0.5, 1.5, a.shape), a.dtype),
                       v["batch_stats"])
  return {**v, "batch_stats": stats}


def test_saved_weights_load_into_a_fresh_model_and_give_the_same_outputs(tmp_path):
  model, src, x = _init("resnet18", seed=1)
  src = _randomise_stats(src, 0)
  path = tmp_path / "src.npz"
  models.save_pretrained(src, path)
  _, dst, _ = _init("resnet18", seed=2)
  assert not np.allclose(model.apply(dst, x)[0], model.apply(src, x)[0])
  full = models.load_pretrained(dst, path, skip_classifier=False)
  np.testing.assert_array_equal(model.apply(full, x)[0], model.apply(src, x)[0])
  # skip_classifier (the default) keeps the fresh classifier and loads everything else
  body = models.load_pretrained(dst, str(path))
  np.testing.assert_array_equal(body["params"]["classifier"]["kernel"],
                                dst["params"]["classifier"]["kernel"])
  np.testing.assert_array_equal(model.apply(body, x, method="trunk"),
                                model.apply(src, x, method="trunk"))


def test_a_checkpoint_for_another_number_of_classes_loads_without_its_classifier(tmp_path):
  _, src, x = _init("resnet18", classes=10, seed=1)
  models.save_pretrained(src, tmp_path / "ten.npz")
  model, dst, _ = _init("resnet18", classes=3, seed=2)
  got = models.load_pretrained(dst, tmp_path / "ten.npz")
  assert got["params"]["classifier"]["kernel"].shape == (8 * W, 3)
  with pytest.raises(ValueError, match=r"params/classifier/kernel: expected shape \(32, 3\), "
                                       r"found \(32, 10\)"):
    models.load_pretrained(dst, tmp_path / "ten.npz", skip_classifier=False)


def test_pretrained_attribute_makes_every_initialisation_start_from_the_file(tmp_path):
  _, src, x = _init("resnet18", seed=1)
  src = _randomise_stats(src, 0)
  models.save_pretrained(src, tmp_path / "w.npz")
  pre = models.get_model("resnet18", 3, width=W, pretrained=str(tmp_path / "w.npz"))
  # round.init_model -> training.init_variables, here for a 2-member ensemble (vmap) under jit
  members, _ = jax.jit(lambda k: init_model(pre, optax.sgd(0.1), k, x[:1], members=2))(
      jax.random.PRNGKey(0))
  flat, want = models.flatten_variables(members), models.flatten_variables(src)
  for key, value in flat.items():
    if key == "params/classifier/kernel":  # fresh, drawn from each member's key
      assert not np.allclose(value[0], value[1]) and not np.allclose(value[0], want[key])
    elif key == "params/classifier/bias":  # fresh: zeros
      np.testing.assert_array_equal(value, 0.0)
    else:  # the file's weights and running statistics
      np.testing.assert_array_equal(value[0], want[key])
      np.testing.assert_array_equal(value[1], want[key])


def test_wrong_shape_missing_and_unexpected_keys_are_named(tmp_path):
  _, v, _ = _init("resnet18")
  flat = {k: np.asarray(a) for k, a in models.flatten_variables(v).items()}
  wrong = {**flat, "params/layer1_0/conv1/kernel": np.zeros((3, 3, W, W + 1), np.float32)}
  with pytest.raises(ValueError, match=r"params/layer1_0/conv1/kernel: expected shape "
                                       r"\(3, 3, 4, 4\), found \(3, 3, 4, 5\)"):
    models.load_pretrained(v, wrong)
  missing = {k: a for k, a in flat.items() if k != "batch_stats/layer2_1/bn2/var"}
  with pytest.raises(ValueError, match=r"Missing keys .*\['batch_stats/layer2_1/bn2/var'\]\. "
                                       r"Unexpected keys .*: none"):
    models.load_pretrained(v, missing)
  extra = {**flat, "params/fc/kernel": np.zeros((2, 2), np.float32)}
  with pytest.raises(ValueError, match=r"Missing keys .*: none\. Unexpected keys .*"
                                       r"\['params/fc/kernel'\]"):
    models.load_pretrained(v, extra)
  with pytest.raises(ValueError, match="no such file"):
    models.load_pretrained(v, tmp_path / "absent.npz")


# ---------------------------------------------------------------------------------------------
# The torchvision converter, without torch: a state_dict of numpy arrays named and shaped as
# torchvision.models.resnet18().state_dict() (OIHW convolutions, [out, in] linear weight).

def torchvision_state_dict(width=64, classes=1000, seed=0):
  rng = np.random.default_rng(seed)
  sd = {}

  def conv(name, o, i, k):
    sd[f"{name}.weight"] = rng.normal(0, np.sqrt(2 / (k * k * o)), (o, i, k, k)).astype(np.float32)

  def bn(name, c):
    sd[f"{name}.weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f"{name}.bias"] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f"{name}.running_mean"] = rng.normal(0, 0.1, c).astype(np.float32)
    sd[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f"{name}.num_batches_tracked"] = np.array(100, np.int64)

  conv("conv1", width, 3, 7)
  bn("bn1", width)
  cin = width
  for s in range(1, 5):
    c = width * 2 ** (s - 1)
    for b in range(2):
      conv(f"layer{s}.{b}.conv1", c, cin if b == 0 else c, 3)
      bn(f"layer{s}.{b}.bn1", c)
      conv(f"layer{s}.{b}.conv2", c, c, 3)
      bn(f"layer{s}.{b}.bn2", c)
      if b == 0 and s > 1:
        conv(f"layer{s}.{b}.downsample.0", c, cin, 1)
        bn(f"layer{s}.{b}.downsample.1", c)
    cin = c
  sd["fc.weight"] = rng.normal(0, 0.05, (classes, 8 * width)).astype(np.float32)
  sd["fc.bias"] = rng.normal(0, 0.05, classes).astype(np.float32)
  return sd


def torch_conv(x_nchw, w_oihw, stride, pad):
  """PyTorch's Conv2d (cross-correlation, zero padding, no bias) in NumPy."""
  x = np.pad(x_nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  o, _, k, _ = w_oihw.shape
  oh = (x.shape[2] - k) // stride + 1
  ow = (x.shape[3] - k) // stride + 1
  out = np.zeros((x.shape[0], o, oh, ow))
  for i in range(k):
    for j in range(k):
      patch = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
      out += np.einsum("nchw,oc->nohw", patch, w_oihw[:, :, i, j])
  return out


def torch_bn_eval(x_nchw, sd, name, eps=1e-5):
  g = lambda s: sd[f"{name}.{s}"][None, :, None, None]
  return (x_nchw - g("running_mean")) / np.sqrt(g("running_var") + eps) * g("weight") + g("bias")


def torch_maxpool_3x3_s2_p1(x_nchw):
  x = np.pad(x_nchw, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  oh, ow = (x.shape[2] - 3) // 2 + 1, (x.shape[3] - 3) // 2 + 1
  return np.max([x[:, :, i:i + 2 * oh:2, j:j + 2 * ow:2] for i in range(3) for j in range(3)],
                axis=0)


def test_converted_full_width_resnet18_loads_into_resnet18_imagenet():
  converted = convert_state_dict(torchvision_state_dict())
  assert "params/stem_conv/kernel" in converted
  assert converted["params/stem_conv/kernel"].shape == (7, 7, 3, 64)
  assert not any("num_batches_tracked" in k for k in converted)
  model = models.get_model("resnet18_imagenet", 1000)
  abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.ones((1, 64, 64, 3))))
  loaded = models.load_pretrained(abstract, converted, skip_classifier=False)
  assert jax.tree.map(np.shape, loaded) == jax.tree.map(lambda a: a.shape, abstract)
  # the 32x32 stem cannot take ImageNet's 7x7 stem kernel: a clear error
  cifar = models.get_model("resnet18", 1000)
  abstract = jax.eval_shape(lambda: cifar.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3))))
  with pytest.raises(ValueError, match=r"params/stem_conv/kernel: expected shape \(3, 3, 3, 64\)"
                                       r", found \(7, 7, 3, 64\)"):
    models.load_pretrained(abstract, converted)


@pytest.mark.slow
def test_converted_weights_compute_what_torchvision_computes():
  width, classes = 8, 5
  sd = torchvision_state_dict(width, classes, seed=1)
  model = models.get_model("resnet18_imagenet", classes, width=width)
  x = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (2, 20, 20, 3)))
  v = model.init(jax.random.PRNGKey(0), x)
  v = models.load_pretrained(v, convert_state_dict(sd), skip_classifier=False)
  (logits, features), st = model.apply(v, x, capture_intermediates=True,
                                       mutable=["intermediates"])
  mid = st["intermediates"]
  nhwc = lambda a: np.asarray(a).transpose(0, 3, 1, 2)  # NHWC -> NCHW
  tol = dict(rtol=1e-4, atol=1e-4)
  # stem: conv 7x7 stride 2 pad 3, BN (running stats), ReLU, max-pool 3x3 stride 2 pad 1
  stem = torch_conv(x.transpose(0, 3, 1, 2), sd["conv1.weight"], 2, 3)
  np.testing.assert_allclose(nhwc(mid["stem_conv"]["__call__"][0]), stem, **tol)
  stem = torch_bn_eval(stem, sd, "bn1")
  np.testing.assert_allclose(nhwc(mid["stem_bn"]["__call__"][0]), stem, **tol)
  pooled = torch_maxpool_3x3_s2_p1(np.maximum(stem, 0))
  # first block's 3x3 convolution, and a stride-2 block with its 1x1 downsample shortcut
  np.testing.assert_allclose(nhwc(mid["layer1_0"]["conv1"]["__call__"][0]),
                             torch_conv(pooled, sd["layer1.0.conv1.weight"], 1, 1), **tol)
  into2 = nhwc(mid["layer1_1"]["__call__"][0])
  np.testing.assert_allclose(nhwc(mid["layer2_0"]["conv1"]["__call__"][0]),
                             torch_conv(into2, sd["layer2.0.conv1.weight"], 2, 1), **tol)
  short = torch_bn_eval(torch_conv(into2, sd["layer2.0.downsample.0.weight"], 2, 0), sd,
                        "layer2.0.downsample.1")
  np.testing.assert_allclose(nhwc(mid["layer2_0"]["downsample_bn"]["__call__"][0]), short, **tol)
  # global average pool and fc (y = x W^T + b)
  last = nhwc(mid["layer4_1"]["__call__"][0])
  np.testing.assert_allclose(features, last.mean(axis=(2, 3)), **tol)
  np.testing.assert_allclose(logits, features @ sd["fc.weight"].T + sd["fc.bias"], **tol)


def test_converter_rejects_names_it_does_not_know():
  sd = torchvision_state_dict(4, 3)
  sd["layer5.0.conv1.weight"] = np.zeros((1, 1, 3, 3), np.float32)
  with pytest.raises(ValueError, match=r"not a torchvision ResNet-18 name: \['layer5.0.conv1.weight'\]"):
    convert_state_dict(sd)
