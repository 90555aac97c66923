"""Host-resident pools scored chunk by chunk equal the whole-pool computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal import models, scoring, strategies, streaming


def _bald_chunk_fn(model, variables, key, s=6):
  return jax.jit(lambda xb, i: scoring.bald(scoring.predict_samples(
      model, variables, xb, jax.random.fold_in(key, i), "mc_dropout", s)))


def test_stream_scores_on_a_memmap_equal_chunked_scoring_on_device(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1000, 4, 4, 1)).astype(np.float32)
  path = tmp_path / "pool.npy"
  np.save(path, x)
  mm = np.load(path, mmap_mode="r")
  model = models.get_model("mlp", 5, hidden=(16, 8))
  v = model.init(jax.random.PRNGKey(0), x[:1])
  key = jax.random.PRNGKey(1)
  got = streaming.stream_scores(_bald_chunk_fn(model, v, key), mm, chunk=128)  # 1000 = 7*128 + 104
  # The same per-chunk keys as scoring.score_pool with the same chunk: identical scores.
  ref = np.asarray(scoring.score_pool(model, v, jnp.asarray(x), key, "mc_dropout", scoring.bald, 6,
                                      chunk=128))
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [7, 64, 500])
def test_stream_top_k_equals_top_k_on_the_whole_pool_ties_and_mask_included(chunk):
  rng = np.random.default_rng(chunk)
  n, k = 500, 23
  scores = rng.integers(0, 9, n).astype(np.float32)     # many exact ties
  cand = rng.random(n) < 0.6
  x = np.arange(n, dtype=np.float32)[:, None]           # the "pool": row i scores scores[i]
  table = jnp.asarray(np.concatenate([scores, np.zeros(chunk, np.float32)]))
  fn = jax.jit(lambda xb, i: table[xb[:, 0].astype(jnp.int32)])
  idx, vals = streaming.stream_top_k(fn, x, k, chunk=chunk, candidates=cand)
  ref = np.asarray(strategies.top_k(jnp.asarray(scores), jnp.asarray(cand), k))
  assert idx.tolist() == ref.tolist()
  np.testing.assert_array_equal(vals, scores[ref])
  assert cand[idx].all() and len(set(idx.tolist())) == k


def test_stream_errors_name_the_argument():
  x = np.zeros((10, 2), np.float32)
  fn = lambda xb, i: jnp.sum(xb, -1)
  with pytest.raises(ValueError, match="chunk=0 must be at least 1"):
    streaming.stream_scores(fn, x, chunk=0)
  with pytest.raises(ValueError, match="k=4 must be between 1 and the 3 candidates"):
    streaming.stream_top_k(fn, x, 4, chunk=4, candidates=np.arange(10) < 3)
  with pytest.raises(ValueError, match=r"candidates has shape \(9,\); expected \(10,\)"):
    streaming.stream_top_k(fn, x, 1, candidates=np.ones(9, bool))


def test_npy_file_reads_the_same_rows_as_numpy(tmp_path):
  x = np.random.default_rng(1).normal(size=(37, 3, 2)).astype(np.float32)
  np.save(tmp_path / "a.npy", x)
  f = streaming.NpyFile(str(tmp_path / "a.npy"))
  assert f.shape == x.shape and f.dtype == x.dtype and len(f) == 37
  for a, b in ((0, 5), (5, 37), (30, 100), (36, 37), (10, 10)):
    np.testing.assert_array_equal(f[a:b], x[a:b])
  with pytest.raises(TypeError, match="contiguous row slices"):
    f[::2]
  # stream_top_k over the file equals the whole-array result.
  fn = jax.jit(lambda xb, i: jnp.sum(xb, axis=(1, 2)))
  idx, _ = streaming.stream_top_k(fn, f, 5, chunk=8)
  ref = np.asarray(strategies.top_k(jnp.asarray(x.sum(axis=(1, 2))), jnp.ones(37, bool), 5))
  assert idx.tolist() == ref.tolist()
