"""Self-supervised pretraining (jaxal.pretrain): the loss against a numpy NT-Xent, the views' shapes
and ranges, the linear probe against scikit-learn, and bit-for-bit resumption after a kill."""
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxal.pretrain import Augment, linear_probe, nt_xent, views

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def numpy_nt_xent(z1, z2, tau):
  """NT-Xent written from the SimCLR paper, one anchor at a time."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  n, b = len(z), len(z1)
  total = 0.0
  for i in range(n):
    j = i + b if i < b else i - b
    sims = np.array([z[i] @ z[k] / tau for k in range(n) if k != i])
    total += -(z[i] @ z[j] / tau - np.log(np.sum(np.exp(sims))))
  return total / n


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_a_numpy_reference(tau):
  rng = np.random.default_rng(0)
  z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  got = float(nt_xent(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), tau))
  assert got == pytest.approx(numpy_nt_xent(z1, z2, tau), rel=1e-5)


def test_nt_xent_is_lower_when_views_agree():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(8, 16)).astype(np.float32)
  other = rng.normal(size=(8, 16)).astype(np.float32)
  assert float(nt_xent(z, z + 0.01 * other, 0.5)) < float(nt_xent(z, other, 0.5))


@pytest.mark.slow
@pytest.mark.parametrize("channels,aug", [
    (1, Augment(crop_min_scale=0.2, flip=False, jitter=0.0, noise_std=0.1)),
    (3, Augment(crop_min_scale=0.2, flip=True, jitter=0.8, noise_std=0.1)),
    (3, Augment(crop_min_scale=1.0)),
])
def test_views_keep_shapes_and_ranges(channels, aug):
  x = jax.random.uniform(jax.random.PRNGKey(0), (16, 12, 10, channels))
  x = x.at[0].set(1.0).at[1].set(0.0)   # saturated images stay in range too
  v1 = views(jax.random.PRNGKey(1), x, aug)
  v2 = views(jax.random.PRNGKey(2), x, aug)
  assert v1.shape == x.shape and v1.dtype == jnp.float32
  assert float(v1.min()) >= 0.0 and float(v1.max()) <= 1.0
  assert not np.allclose(v1, v2)   # two keys, two different views


@pytest.mark.slow
def test_linear_probe_matches_scikit_learn_logistic_regression():
  from sklearn.linear_model import LogisticRegression
  rng = np.random.default_rng(0)
  means = rng.normal(scale=1.5, size=(4, 6))
  y = rng.integers(0, 4, 800)
  x = means[y] + rng.normal(size=(800, 6))
  got = linear_probe(x[:600], y[:600], x[600:], y[600:], 4, steps=500)
  ref = LogisticRegression(max_iter=2000).fit(x[:600], y[:600]).score(x[600:], y[600:])
  assert abs(got["test_accuracy"] - ref) <= 0.02
  assert got["test_accuracy"] > 0.5


def _pretrain(workdir, env):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "log.txt"), "w") as log:   # a file: a full pipe would block
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.pretrain", f"--workdir={workdir}", "--steps=200",
         "--log_every=10", "--checkpoint_every=10", "--probe_steps=0", "--batch_size=64"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_pretraining_resumes_bit_for_bit_after_a_kill(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT}
  whole = tmp_path / "whole"
  assert _pretrain(whole, env).wait(timeout=300) == 0
  cut = tmp_path / "cut"
  proc = _pretrain(cut, env)
  ckpt = cut / "checkpoints"
  deadline = time.time() + 300
  while not (ckpt.is_dir() and any(p.name.isdigit() for p in ckpt.iterdir())):
    assert proc.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
    time.sleep(0.02)
  proc.kill()
  proc.wait()
  assert not (cut / "encoder.npz").exists()   # killed mid-run
  out = subprocess.run([sys.executable, "-m", "experiments.pretrain", f"--workdir={cut}",
                        "--steps=200", "--log_every=10", "--checkpoint_every=10",
                        "--probe_steps=0", "--batch_size=64"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout + out.stderr
  assert "resuming from checkpoint step" in out.stdout + out.stderr
  a, b = np.load(whole / "encoder.npz"), np.load(cut / "encoder.npz")
  assert sorted(a.files) == sorted(b.files)
  for k in a.files:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  np.testing.assert_array_equal(np.load(whole / "embeddings.npy"), np.load(cut / "embeddings.npy"))
  curve_a = json.loads((whole / "pretrain.json").read_text())["curve"]
  curve_b = json.loads((cut / "pretrain.json").read_text())["curve"]
  assert curve_a == curve_b


@pytest.mark.slow
def test_bad_pretraining_flag_is_one_line_naming_it():
  out = subprocess.run([sys.executable, "-m", "experiments.pretrain", "--crop_min_scale=0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT})
  assert out.returncode == 1
  assert out.stderr.strip() == "error: --crop_min_scale must be in (0, 1], got 0.0."
