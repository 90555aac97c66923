import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import models


@pytest.mark.parametrize("name,shape,feat", [("mlp", (8, 8, 1), 128), ("lenet5", (28, 28, 1), 84),
                                             ("lenet5", (32, 32, 3), 84), ("cnn3", (32, 32, 3), 128),
                                             ("cnn3", (8, 8, 1), 128),
                                             ("gal_cnn", (28, 28, 1), 128),
                                             ("gal_cnn_code", (28, 28, 1), 256)])
def test_models_return_logits_and_penultimate_features(name, shape, feat):
  model = models.get_model(name, 7)
  x = jnp.ones((2,) + shape)
  v = model.init(jax.random.PRNGKey(0), x)
  logits, features = model.apply(v, x)
  assert logits.shape == (2, 7) and features.shape == (2, feat)
  # the logits are a linear function of the features (features really are the penultimate layer)
  last = v["params"]["classifier"]
  np.testing.assert_allclose(features @ last["kernel"] + last["bias"], logits, rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn3", "gal_cnn", "gal_cnn_code"])
@pytest.mark.slow
def test_dropout_is_active_only_when_asked(name):
  model = models.get_model(name, 3)
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 28, 28, 1))
  v = model.init(jax.random.PRNGKey(0), x)
  det1 = model.apply(v, x)[0]
  det2 = model.apply(v, x, train=False)[0]
  np.testing.assert_array_equal(det1, det2)
  a = model.apply(v, x, dropout=True, rngs={"dropout": jax.random.PRNGKey(1)})[0]
  b = model.apply(v, x, dropout=True, rngs={"dropout": jax.random.PRNGKey(2)})[0]
  assert not np.allclose(a, b)


def test_lenet_rejects_tiny_images_with_a_clear_message():
  model = models.get_model("lenet5", 10)
  with pytest.raises(ValueError, match="lenet5 needs images of at least 12x12"):
    model.init(jax.random.PRNGKey(0), jnp.ones((1, 8, 8, 1)))


def test_unknown_model_lists_registry():
  with pytest.raises(ValueError, match="model: unknown model 'vgg'; accepted: cnn2_bn, cnn3, "
                     "gal_cnn, gal_cnn_code, lenet5, linear, mlp, mlp_head, resnet18, "
                     "resnet18_imagenet"):
    models.get_model("vgg", 10)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cnn3", "gal_cnn", "gal_cnn_code"])
@pytest.mark.slow
def test_head_of_trunk_is_the_whole_network(name):
  model = models.get_model(name, 5)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 28, 28, 1))
  v = model.init(jax.random.PRNGKey(0), x)
  h = model.apply(v, x, method="trunk")
  key = {"dropout": jax.random.PRNGKey(4)}
  split = model.apply(v, h, dropout=True, method="head", rngs=key)[0]
  whole = model.apply(v, x, dropout=True, rngs=key)[0]
  np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,k,flat,hidden,count", [
    # the paper: 4x4 convs (28 -> 25 -> 22), pool 2 (-> 11), dense 128
    ("gal_cnn", 4, 11 * 11 * 32, 128, 544 + 16_416 + 495_744 + 1_290),
    # the released script: 3x3 convs (28 -> 26 -> 24), pool 5 stride 5 (-> 4), dense 256
    ("gal_cnn_code", 3, 4 * 4 * 32, 256, 320 + 9_248 + 131_328 + 2_570)])
def test_gal_cnns_match_their_architectures(name, k, flat, hidden, count):
  model = models.get_model(name, 10)
  v = model.init(jax.random.PRNGKey(0), jnp.ones((1, 28, 28, 1)))
  shapes = jax.tree.map(lambda a: a.shape, v["params"])
  assert shapes["conv1"]["kernel"] == (k, k, 1, 32)
  assert shapes["conv2"]["kernel"] == (k, k, 32, 32)
  assert shapes["fc"]["kernel"] == (flat, hidden)
  assert shapes["classifier"]["kernel"] == (hidden, 10)
  assert sum(a.size for a in jax.tree.leaves(v["params"])) == count
  assert model.dropout_rates == (0.25, 0.5)

