"""Shared pieces of the labeling-page tests: a small unlabeled image folder (scikit-learn digits
0-2 as PNG files, with their true classes kept aside), a `Labeling` built like `--oracle=web`
builds it, and a person who answers with the true classes."""
from __future__ import annotations

import os
import time

import jax.numpy as jnp
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

CLASSES = ("zero", "one", "two")


def make_folder(root: str, n: int = 60) -> dict[str, int]:
  """Writes n digit images (classes 0-2) as PNGs under `root` (a third in a subfolder, which
  carries no meaning) and classes.txt. Returns {relative path: true class}."""
  d = load_digits(n_class=3)
  truth = {}
  os.makedirs(os.path.join(root, "batch2"), exist_ok=True)
  for i in range(n):
    rel = f"{'batch2/' if i % 3 == 0 else ''}img{i:03d}.png"
    Image.fromarray((d.images[i] * 255 / 16).round().astype(np.uint8)).save(
        os.path.join(root, rel))
    truth[rel] = int(d.target[i])
  with open(os.path.join(root, "classes.txt"), "w") as f:
    f.write("\n".join(CLASSES) + "\n")
  return truth


def make_labeling(folder: str, workdir: str, *, rounds: int = 2, query_size: int = 6,
                  token: str = "test-token-123", strategy: str = "margin", **changes):
  """A `jaxal.human.web.Labeling` over `folder`, as `jaxal-label` makes it (MLP, few epochs)."""
  from jaxal import Budget, TrainConfig, experiment, get_model, make_optimizer, make_round
  from jaxal import registry
  from jaxal.data import channel_stats, normalize
  from jaxal.data.sources import load_unlabeled
  from jaxal.data.splits import known_splits
  from jaxal.human.web import Labeling
  from jaxal.presets import load
  from jaxal.state import LabeledArrays
  ds = load_unlabeled(folder)
  mean, std = channel_stats(ds.x_train)
  pool = LabeledArrays(jnp.asarray(normalize(ds.x_train, mean, std)), jnp.asarray(ds.y_train))
  tc = TrainConfig(epochs=5, batch_size=16)
  cfg = {**load("label").to_dict(), "model": "mlp", "rounds": rounds, "query_size": query_size,
         **changes}
  round_fn = make_round(get_model("mlp", 3), make_optimizer(tc), registry.strategy(strategy, cfg),
                        budget=Budget(0, query_size, rounds), train=tc, num_classes=3)
  person = dict(round_fn=round_fn, pool=pool, test=None, seed=0, split=known_splits(ds.y_train),
                images=ds.x_train, class_names=ds.class_names, train_index=ds.train_index,
                workdir=workdir, keep=2, seed_batching="auto", log=lambda s: None, holdout=0.2,
                cold_start="typiclust")
  results = {"config": {**cfg, "image_shape": list(ds.image_shape),
                        "channel_mean": [float(v) for v in mean],
                        "channel_std": [float(v) for v in std],
                        "class_names": list(ds.class_names)}, "runs": []}
  os.makedirs(workdir, exist_ok=True)
  return Labeling(person, ds, cfg, results, experiment.write_results, token, log=lambda s: None)


def wait_for(get_state, phases=("asking", "done"), timeout: float = 240.0) -> dict:
  """Polls `get_state()` until its phase is one of `phases` (an "error" phase fails)."""
  t0 = time.time()
  while time.time() - t0 < timeout:
    s = get_state()
    if s["phase"] in phases:
      return s
    assert s["phase"] != "error", s.get("message")
    time.sleep(0.2)
  raise AssertionError(f"still {s['phase']} after {timeout} s")


def free_port() -> int:
  import socket  # pylint: disable=import-outside-toplevel
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(folder: str, workdir: str, token: str = "test-token-123"):
  """`python -m experiments.label` on `folder` (MLP, 2 rounds of 6, 5 epochs) on a free port, once
  it has printed its address. Returns (process, base URL)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  port = free_port()
  base = f"http://127.0.0.1:{port}"
  proc = subprocess.Popen(
      [sys.executable, "-m", "experiments.label", f"--data_dir={folder}", f"--workdir={workdir}",
       f"--port={port}", f"--token={token}", "--model=mlp", "--rounds=2", "--query_size=6",
       "--epochs=5"], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      env={**os.environ, "JAX_PLATFORMS": "cpu"}, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  line = ""
  while "labeling page:" not in line:
    line = proc.stdout.readline()
    if not line:
      proc.wait()
      raise AssertionError("the server ended before printing its address")
  assert f"{base}/?token={token}" in line, line
  return proc, base


def true_answer(truth: dict[str, int], paths, index: int) -> str:
  return CLASSES[truth[paths[index]]]
