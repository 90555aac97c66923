"""The pool axis sharded over 1, 2 and 8 simulated CPU devices gives the unsharded results.

Simulated devices need XLA_FLAGS before JAX starts, so each device count runs in a subprocess that
computes both the sharded and the unsharded (one device, no sharding) result and compares them."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(r"""
  import json, sys
  import jax, jax.numpy as jnp, numpy as np
  from jaxal import kmeans as km, models, scoring, sharding, strategies
  from jaxal.data.synthetic import gaussian_pool

  out = {"devices": jax.device_count()}
  mesh = sharding.pool_mesh()
  rng = np.random.default_rng(0)

  # Selection: scores with many exact ties, a candidate mask, k larger than a shard of 8 devices.
  n, k = 203, 30
  scores = rng.integers(0, 12, n).astype(np.float32)
  cand = rng.random(n) < 0.7
  ref = np.asarray(strategies.top_k(jnp.asarray(scores), jnp.asarray(cand), k))
  s_sh, valid = sharding.shard_pool(scores, mesh)
  c_sh, _ = sharding.shard_pool(cand, mesh)
  got = sharding.sharded_top_k(s_sh, c_sh & valid, k, mesh)
  out["top_k_equal"] = np.asarray(got).tolist() == ref.tolist()
  out["scores_sharded"] = len(s_sh.sharding.device_set) == jax.device_count()

  # k-means over sharded features (with a mask that drops the padding and some rows).
  x, _ = gaussian_pool(400, 5, 6, seed=1, scale=6.0)
  x = x.reshape(400, 6)
  mask = rng.random(400) < 0.9
  fn = jax.jit(km.kmeans, static_argnames=("k", "max_iter", "n_init", "chunk", "n_local_trials"))
  key = jax.random.PRNGKey(3)
  ref = fn(key, jnp.asarray(x), 5, mask=jnp.asarray(mask), chunk=64)
  x_sh, valid = sharding.shard_pool(x, mesh)
  m_sh, _ = sharding.shard_pool(mask, mesh)
  res = sharding.sharded_kmeans(key, x_sh, 5, mesh, mask=m_sh & valid, chunk=64)
  out["assignment_equal"] = np.asarray(res.assignment)[:400].tolist() == np.asarray(ref.assignment).tolist()
  out["padding_unassigned"] = bool(np.all(np.asarray(res.assignment)[400:] == -1))
  out["centroid_max_diff"] = float(np.max(np.abs(np.asarray(res.centroids) - np.asarray(ref.centroids))))
  out["inertia_rel_diff"] = abs(float(res.inertia) - float(ref.inertia)) / float(ref.inertia)
  out["assignment_sharded"] = len(res.assignment.sharding.device_set) == jax.device_count()

  # Scoring: BALD with MC dropout over sharded images, then sharded selection.
  model = models.get_model("mlp", 4, hidden=(16, 8))
  imgs = rng.normal(size=(96, 4, 4, 1)).astype(np.float32)
  v = model.init(jax.random.PRNGKey(0), imgs[:1])
  score = jax.jit(lambda v, xs: scoring.score_pool(model, v, xs, jax.random.PRNGKey(5),
                                                   "mc_dropout", scoring.bald, 8, 96))
  ref_scores = np.asarray(score(v, jnp.asarray(imgs)))
  i_sh, valid = sharding.shard_pool(imgs, mesh)
  sh_scores = score(v, i_sh)
  out["score_max_diff"] = float(np.max(np.abs(np.asarray(sh_scores)[:96] - ref_scores)))
  print(json.dumps(out))
""")


@pytest.mark.parametrize("devices", [1, 2, 8])
@pytest.mark.slow
def test_sharded_selection_kmeans_and_scoring_equal_unsharded(devices):
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  out = json.loads(p.stdout.strip().splitlines()[-1])
  assert out["devices"] == devices
  assert out["scores_sharded"] and out["assignment_sharded"]
  assert out["top_k_equal"]
  assert out["assignment_equal"] and out["padding_unassigned"]
  assert out["centroid_max_diff"] < 1e-4 and out["inertia_rel_diff"] < 1e-5
  assert out["score_max_diff"] < 1e-5


def test_shard_pool_pads_to_the_device_count_and_marks_the_padding():
  import numpy as np
  from jaxal import sharding
  mesh = sharding.pool_mesh()
  x, valid = sharding.shard_pool(np.arange(5, dtype=np.float32), mesh)
  size = mesh.devices.size
  assert x.shape[0] % size == 0 and x.shape[0] - 5 < size
  assert np.asarray(valid).tolist() == [True] * 5 + [False] * (x.shape[0] - 5)
  with pytest.raises(ValueError, match="k=0 must be between 1 and the pool size"):
    sharding.sharded_top_k(x, valid, 0, mesh)


def test_initialize_distributed_names_missing_variables(monkeypatch):
  from jaxal import sharding
  monkeypatch.setenv("JAXAL_COORDINATOR", "10.0.0.1:1234")
  monkeypatch.delenv("JAXAL_NUM_PROCESSES", raising=False)
  monkeypatch.setenv("JAXAL_PROCESS_ID", "0")
  with pytest.raises(ValueError, match="needs JAXAL_NUM_PROCESSES as well"):
    sharding.initialize_distributed()
  monkeypatch.setenv("JAXAL_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAXAL_PROCESS_ID", "2")
  with pytest.raises(ValueError, match=r"JAXAL_PROCESS_ID=2 must be in \[0, JAXAL_NUM_PROCESSES=2\)"):
    sharding.initialize_distributed()
