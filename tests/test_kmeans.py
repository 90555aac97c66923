"""Tests for jaxal.kmeans: numpy / scikit-learn references, masks, empty clusters, jit and vmap."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from jaxal.kmeans import KMeansResult, assign, kmeans, kmeans_plus_plus, squared_distances

STATIC = ("k", "max_iter", "n_init", "chunk", "n_local_trials")
jit_kmeans = jax.jit(kmeans, static_argnames=STATIC)
jit_plus_plus = jax.jit(kmeans_plus_plus, static_argnames=("k", "chunk", "n_local_trials"))


def np_sqdist(x, c):
  x, c = np.asarray(x, np.float64), np.asarray(c, np.float64)
  return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)


def sklearn_inertia(x, k, n_init=5, seed=0):
  return KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=seed).fit(x).inertia_


def check_consistent(x, res, mask=None):
  """Assignment is the numpy argmin for the returned centroids; inertia is the numpy sum."""
  x = np.asarray(x, np.float64)
  valid = np.ones(len(x), bool) if mask is None else np.asarray(mask)
  d = np_sqdist(x, res.centroids)
  a = np.asarray(res.assignment)
  np.testing.assert_array_equal(a[valid], d[valid].argmin(1))
  np.testing.assert_array_equal(a[~valid], -1)
  np.testing.assert_allclose(float(res.inertia), d[valid].min(1).sum(), rtol=1e-5)


@pytest.fixture(scope="module")
def blobs():
  x, _ = make_blobs(2000, n_features=16, centers=8, cluster_std=1.0, random_state=0)
  return x.astype(np.float32)


@pytest.fixture(scope="module")
def overlapping():
  x, _ = make_blobs(2000, n_features=10, centers=12, cluster_std=4.0, center_box=(-8, 8),
                    random_state=1)
  return x.astype(np.float32)


@pytest.fixture(scope="module")
def mlp_features():
  """Penultimate features of a randomly initialised MLP on the digits images."""
  from jaxal.models import get_model
  images = load_digits().images.astype(np.float32)[..., None] / 16.0
  model = get_model("mlp", 10)
  variables = model.init({"params": jax.random.key(0)}, images[:1], train=False)
  _, feats = model.apply(variables, images, train=False)
  return np.asarray(feats, np.float32)


@pytest.fixture(scope="module")
def trained_cnn_features():
  """Penultimate features of the 3-block CNN after a few epochs of training on digits."""
  from jaxal import training
  from jaxal.models import get_model
  from jaxal.state import TrainConfig
  d = load_digits()
  images = d.images.astype(np.float32)[..., None] / 16.0
  model = get_model("cnn3", 10, filters=(8, 16, 16), dense=(32,))
  cfg = TrainConfig(epochs=4, batch_size=64)
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), images)
  labeled = np.arange(len(images)) < 1000
  v, _, _ = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), images,
                         d.target.astype(np.int32), labeled, cfg, capacity=1000)
  _, feats = training.predict(model, v, images, 512)
  return np.asarray(feats, np.float32)


@pytest.mark.parametrize("chunk", [1, 7, 25, 100, 1000])
def test_squared_distances_match_numpy_for_any_chunk(chunk):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(100, 6)).astype(np.float32)
  c = rng.normal(size=(9, 6)).astype(np.float32)
  got = squared_distances(x, c, chunk=chunk)
  assert got.shape == (100, 9)
  np.testing.assert_allclose(np.asarray(got), np_sqdist(x, c), rtol=1e-5, atol=1e-5)
  assert float(got.min()) >= 0.0


@pytest.mark.parametrize("chunk", [3, 64, 4096])
def test_assign_is_argmin_and_min_of_numpy_distances(chunk):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 5)).astype(np.float32)
  c = rng.normal(size=(7, 5)).astype(np.float32)
  mask = rng.random(200) < 0.7
  a, dist = assign(x, c, chunk=chunk, mask=mask)
  d = np_sqdist(x, c)
  np.testing.assert_array_equal(np.asarray(a)[mask], d[mask].argmin(1))
  np.testing.assert_array_equal(np.asarray(a)[~mask], -1)
  np.testing.assert_allclose(np.asarray(dist)[mask], d[mask].min(1), rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(dist)[~mask], 0.0)
  assert a.dtype == jnp.int32


@pytest.mark.parametrize("data,k", [("blobs", 8), ("overlapping", 12), ("mlp_features", 10),
                                    ("trained_cnn_features", 10)])
@pytest.mark.slow
def test_inertia_within_one_percent_of_sklearn(data, k, request):
  x = request.getfixturevalue(data)
  res = jit_kmeans(jax.random.key(0), x, k, n_init=5, chunk=512)
  ref = sklearn_inertia(x, k, n_init=5)
  assert float(res.inertia) <= ref * 1.01, (float(res.inertia), ref)
  assert bool(res.converged)
  check_consistent(x, res)


def test_centroids_are_means_of_their_points_at_convergence(overlapping):
  res = jit_kmeans(jax.random.key(3), overlapping, 12, tol=0.0, max_iter=300, chunk=333)
  assert bool(res.converged) and int(res.iterations) < 300
  a = np.asarray(res.assignment)
  assert set(np.unique(a)) == set(range(12))
  means = np.stack([overlapping[a == j].astype(np.float64).mean(0) for j in range(12)])
  np.testing.assert_allclose(np.asarray(res.centroids), means, rtol=1e-4, atol=1e-4)
  check_consistent(overlapping, res)


def test_result_types_and_shapes(blobs):
  res = jit_kmeans(jax.random.key(0), blobs, 8)
  assert isinstance(res, KMeansResult)
  assert res.centroids.shape == (8, 16) and res.assignment.shape == (2000,)
  assert res.assignment.dtype == jnp.int32 and res.iterations.dtype == jnp.int32
  assert res.converged.dtype == jnp.bool_ and res.inertia.shape == ()


def test_kmeans_plus_plus_never_picks_masked_points(overlapping):
  rng = np.random.default_rng(0)
  mask = rng.random(len(overlapping)) < 0.3
  # Push the invalid points far away: D^2 sampling would love them if they counted.
  x = np.where(mask[:, None], overlapping, overlapping + 1000.0).astype(np.float32)
  for seed in range(5):
    c = np.asarray(jit_plus_plus(jax.random.key(seed), x, 12, mask=mask, chunk=100))
    rows = (c[:, None, :] == x[None]).all(-1)  # [k, n]
    assert rows.any(1).all()                   # every seed is a row of x
    assert not rows[:, ~mask].any()            # ... and never an invalid one


@pytest.mark.slow
def test_masked_points_are_ignored_and_equal_to_the_valid_subset(overlapping):
  rng = np.random.default_rng(2)
  mask = rng.random(len(overlapping)) < 0.6
  x = np.where(mask[:, None], overlapping, 1e4).astype(np.float32)  # junk where masked out
  key = jax.random.key(7)
  full = jit_kmeans(key, x, 6, mask=mask, n_init=2, chunk=256)
  sub = jit_kmeans(key, x[mask], 6, n_init=2, chunk=256)
  a = np.asarray(full.assignment)
  np.testing.assert_array_equal(a[~mask], -1)
  np.testing.assert_array_equal(a[mask], np.asarray(sub.assignment))
  np.testing.assert_allclose(np.asarray(full.centroids), np.asarray(sub.centroids), rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(float(full.inertia), float(sub.inertia), rtol=1e-5)
  check_consistent(x, full, mask)


def test_empty_cluster_is_reseeded(blobs):
  init = np.asarray(blobs[[0, 1, 2, 3, 4, 5, 6]])
  init = np.concatenate([init, np.full((1, 16), 1e5, np.float32)])  # far from every point
  res = jit_kmeans(jax.random.key(0), blobs, 8, init=init, max_iter=100)
  counts = np.bincount(np.asarray(res.assignment), minlength=8)
  assert (counts > 0).all(), counts
  assert np.abs(np.asarray(res.centroids)).max() < 1e3
  check_consistent(blobs, res)


def test_empty_cluster_reseeding_is_deterministic(blobs):
  init = np.concatenate([blobs[:6], np.full((2, 16), -1e5, np.float32)])
  r1 = jit_kmeans(jax.random.key(0), blobs, 8, init=init, max_iter=1)
  r2 = jit_kmeans(jax.random.key(1), blobs, 8, init=init, max_iter=1)
  np.testing.assert_array_equal(np.asarray(r1.centroids), np.asarray(r2.centroids))
  # After one iteration the two empty clusters sit on the two points farthest from their centroid.
  a, dist = assign(blobs, init[:6])
  far = np.argsort(-np.asarray(dist), kind="stable")[:2]
  np.testing.assert_array_equal(np.asarray(r1.centroids)[6:], blobs[far])


@pytest.mark.slow
def test_jit_and_vmap_over_keys_equal_separate_calls(overlapping):
  keys = jax.random.split(jax.random.key(11), 3)
  run = functools.partial(jit_kmeans, x=overlapping, k=12, n_init=2, chunk=300)
  batched = jax.jit(jax.vmap(lambda key: kmeans(key, overlapping, 12, n_init=2, chunk=300)))(keys)
  assert batched.centroids.shape == (3, 12, 10)
  for i in range(3):
    single = run(keys[i])
    np.testing.assert_allclose(np.asarray(batched.centroids[i]), np.asarray(single.centroids),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(batched.assignment[i]),
                                  np.asarray(single.assignment))
    np.testing.assert_allclose(float(batched.inertia[i]), float(single.inertia), rtol=1e-5)
    assert int(batched.iterations[i]) == int(single.iterations)
  # Different keys really give different runs.
  assert len({float(v) for v in batched.inertia}) > 1 or \
      not np.allclose(batched.centroids[0], batched.centroids[1])


@pytest.mark.slow
def test_jit_with_traced_mask_and_tol(overlapping):
  mask = np.arange(len(overlapping)) % 3 != 0
  res = jit_kmeans(jax.random.key(0), overlapping, k=5, mask=jnp.asarray(mask), tol=1e-3)
  eager = kmeans(jax.random.key(0), overlapping, 5, mask=mask, tol=1e-3)
  np.testing.assert_allclose(float(res.inertia), float(eager.inertia), rtol=1e-5)
  check_consistent(overlapping, res, mask)


@pytest.mark.slow
def test_kmeans_plus_plus_picks_distinct_points_and_k_distinct_gives_zero_inertia():
  rng = np.random.default_rng(0)
  distinct = rng.normal(size=(9, 4)).astype(np.float32) * 10
  x = distinct[rng.integers(0, 9, size=300)]  # 9 distinct points, many duplicates
  x[:9] = distinct                              # each appears at least once
  for seed in range(5):
    for trials in (None, 1):
      c = np.asarray(jit_plus_plus(jax.random.key(seed), x, 9, n_local_trials=trials))
      assert len(np.unique(c, axis=0)) == 9
  seeds = jit_kmeans(jax.random.key(0), x, 9, max_iter=0)
  assert float(seeds.inertia) == 0.0          # seeds are the 9 distinct points
  res = jit_kmeans(jax.random.key(0), x, 9)
  assert float(res.inertia) <= 1e-6           # means of duplicates, up to float32 rounding
  assert bool(res.converged)
  assert len(np.unique(np.asarray(res.assignment))) == 9


def test_max_iter_stops_and_reports_not_converged(overlapping):
  res = jit_kmeans(jax.random.key(0), overlapping, 12, max_iter=1, tol=0.0)
  assert int(res.iterations) == 1 and not bool(res.converged)
  check_consistent(overlapping, res)


def test_argument_errors_name_the_argument(blobs):
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="k must be >= 1"):
    kmeans(key, blobs, 0)
  with pytest.raises(ValueError, match="k=5 is larger than the number of valid points"):
    kmeans(key, blobs, 5, mask=np.arange(2000) < 3)
  with pytest.raises(ValueError, match="k=3000 is larger than the number of points"):
    kmeans(key, blobs, 3000)
  with pytest.raises(ValueError, match="x must be 2-D"):
    kmeans(key, blobs[0], 2)
  with pytest.raises(ValueError, match="mask must have shape"):
    kmeans(key, blobs, 2, mask=np.ones(5, bool))
  with pytest.raises(ValueError, match="init must have shape"):
    kmeans(key, blobs, 2, init=np.zeros((3, 16)))
  with pytest.raises(ValueError, match="n_init"):
    kmeans(key, blobs, 2, init=np.zeros((2, 16)), n_init=3)
  with pytest.raises(ValueError, match="tol must be >= 0"):
    kmeans(key, blobs, 2, tol=-1.0)
  with pytest.raises(TypeError, match="k must be a Python int"):
    kmeans(key, blobs, 2.5)
  with pytest.raises(ValueError, match="chunk must be >= 1"):
    assign(blobs, blobs[:3], chunk=0)
  with pytest.raises(ValueError, match="c must be"):
    squared_distances(blobs, np.zeros((3, 4)))
