"""train-parity: does jaxal's training reach the accuracy of plain PyTorch's on the same labels?

fmnist-bald's final accuracies move with the seed by about 3 points (its last training set of 200
labels ends every epoch on a batch of 8), so a few seeds of the whole active-learning run cannot
tell a difference in training from noise. This workload takes the selection out: for each seed it
draws one balanced random labeled set of the largest of --parity_sizes (from the seed's own
`numpy.random.default_rng`, shuffled, so each smaller size is a prefix of it) and trains LeNet-5 on
each prefix with fmnist-bald's training (--epochs epochs, batch 64, SGD lr 0.01, momentum 0.9,
Flax's initialisers) in jaxal and, with --torch_python, in plain PyTorch
(experiments/torch_reference.py train-parity, reading the same sets). Both report the test
accuracy of every (size, seed); the table gives each side's mean and standard error over the
--repeats seeds and the paired difference (jaxal - PyTorch, seed by seed).

The jaxal side is `jaxal.training.fit` from `jaxal.training.init_variables`, the functions a round
trains with, one compiled program for every size (the labeled set is a mask)."""
from __future__ import annotations

import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal import models, training
from jaxal.cli.benchmarks import common
from jaxal.state import TrainConfig

FLAGS = flags.FLAGS


def parity_sets(y: np.ndarray, sizes: list[int], seeds, num_classes: int = 10) -> dict:
  """{f"{size}_{seed}": int64 indices into y}: per seed, max(sizes) // num_classes items of every
  class drawn without replacement, shuffled; each size takes the first `size` of them."""
  top = max(sizes)
  if top % num_classes:
    raise SystemExit(f"error: --parity_sizes: the largest size ({top}) must be a multiple of "
                     f"{num_classes} (a balanced set).")
  per, have = top // num_classes, np.bincount(y, minlength=num_classes)
  if have.min() < per:
    raise SystemExit(f"error: --parity_sizes: the largest size ({top}) needs {per} images of "
                     f"every class; class {int(np.argmin(have))} has {int(have.min())}.")
  sets = {}
  for s in seeds:
    rng = np.random.default_rng(s)
    pick = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False)
                           for c in range(num_classes)])
    pick = rng.permutation(pick).astype(np.int64)
    for n in sizes:
      sets[f"{n}_{s}"] = pick[:n]
  return sets


def _sizes() -> list[int]:
  try:
    sizes = sorted({int(v) for v in FLAGS.parity_sizes.split(",") if v.strip()})
  except ValueError:
    sizes = []
  if not sizes or min(sizes) < 1:
    raise SystemExit(f"error: --parity_sizes={FLAGS.parity_sizes!r}; accepted: comma-separated "
                     "positive labeled-set sizes, e.g. 190,200.")
  return sizes


def train_parity() -> dict:
  if FLAGS.train_limit and FLAGS.torch_python:
    raise SystemExit("error: --train_limit trains on a sample of the training set; the PyTorch "
                     "baseline reads the whole set, so the two would not compare (drop "
                     "--train_limit).")
  sizes, seeds = _sizes(), list(range(FLAGS.repeats))
  from jaxal.data import channel_stats, load_dataset, normalize, subsample
  ds = load_dataset("idx", common.fmnist_dir())
  if FLAGS.train_limit:
    ds = subsample(ds, FLAGS.train_limit, max(FLAGS.train_limit // 10, 10))
  mean, std = channel_stats(ds.x_train)
  x = jnp.asarray(normalize(ds.x_train, mean, std))
  y = jnp.asarray(ds.y_train, jnp.int32)
  xt, yt = jnp.asarray(normalize(ds.x_test, mean, std)), jnp.asarray(ds.y_test, jnp.int32)
  sets = parity_sets(np.asarray(ds.y_train), sizes, seeds)

  tc = TrainConfig(epochs=FLAGS.epochs, batch_size=64, optimizer="sgd", learning_rate=0.01,
                   momentum=0.9, eval_batch_size=FLAGS.chunk)
  model, tx = models.get_model("lenet5", 10), training.make_optimizer(tc)

  @jax.jit
  def accuracy(key, labeled, x, y, xt, yt):   # (the data as arguments, not as constants)
    init_key, fit_key = jax.random.split(key)
    variables = training.init_variables(model, init_key, x[:1])
    variables, _, _ = training.fit(model, tx, variables, tx.init(variables["params"]), fit_key,
                                   x, y, labeled, tc, capacity=max(sizes))
    logits, _ = training.predict(model, variables, xt, tc.eval_batch_size)
    return jnp.mean((jnp.argmax(logits, -1) == yt).astype(jnp.float32))

  mine = {}
  for key, idx in sets.items():
    labeled = np.zeros(x.shape[0], bool)
    labeled[idx] = True
    mine[key] = float(accuracy(jax.random.PRNGKey(int(key.split("_")[1])), jnp.asarray(labeled),
                               x, y, xt, yt))
  print(f"jaxal: {len(sets)} trainings done", flush=True)

  torch = None
  if FLAGS.torch_python:
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "sets.npz")
      np.savez(path, **sets)
      torch = common.torch_reference("train-parity", f"--data_dir={common.fmnist_dir()}",
                                     f"--sets={path}", f"--epochs={FLAGS.epochs}")
  rows = []
  for n in sizes:
    a = [mine[f"{n}_{s}"] for s in seeds]
    row = {"labels": n, "jaxal": a, "jaxal_mean_se": common.mean_se(a)}
    if torch:
      b = [torch["accuracy"][f"{n}_{s}"] for s in seeds]
      row.update(torch=b, torch_mean_se=common.mean_se(b),
                 paired_difference_mean_se=common.mean_se(np.subtract(a, b)),
                 jaxal_ahead=int(np.sum(np.greater(a, b))))
    rows.append(row)
  print(f"\ntrain-parity: LeNet-5, {FLAGS.epochs} epochs, batch 64, SGD 0.01/0.9, Flax init; test "
        f"accuracy over {len(seeds)} seeds (mean ± s.e.), the same labeled sets on both sides")
  print("| labels | jaxal           | PyTorch         | jaxal - PyTorch (paired) | jaxal ahead |")
  print("|--------|-----------------|-----------------|--------------------------|-------------|")
  for r in rows:
    ms = lambda k: f"{r[k][0]:.4f} ± {r[k][1]:.4f}" if k in r else f"{'-':15}"
    ahead = f"{r['jaxal_ahead']} of {len(seeds)}" if "jaxal_ahead" in r else "-"
    print(f"| {r['labels']:6} | {ms('jaxal_mean_se')} | {ms('torch_mean_se')} | "
          f"{ms('paired_difference_mean_se'):24} | {ahead:11} |")
  return {"workload": "train-parity", "sizes": sizes, "seeds": seeds, "epochs": FLAGS.epochs,
          "train_limit": FLAGS.train_limit, "env": common.env(), "results": rows,
          "torch": torch}
