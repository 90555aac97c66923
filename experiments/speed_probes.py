"""The small measurements behind issue 21's changes (BUILD_NOTES.md, "Speed against the strongest
baseline"), each printing its numbers:

  python -m experiments.speed_probes conv      # one layer, 1,024 images: XLA's conv vs rows (whole
                                               # rows, and training's tiles) vs im2col
  python -m experiments.speed_probes pool      # LeNet-5 `fit` (150 steps, batch 64): flax's max_pool
                                               # vs jaxal's, and whether the parameters are identical
  python -m experiments.speed_probes train     # LeNet-5 `fit` (192 labels, 50 epochs): ms per 64
                                               # images by lowering (rows in tiles or whole
                                               # rows), batch size, and 3 seeds by
                                               # lax.map against vmap
  python -m experiments.speed_probes start --data_dir=<fashion_mnist IDX folder>
                                               # the command three times: when its first round starts

Timings are the best of several runs of an already compiled function."""
from __future__ import annotations

import argparse
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np


def _best_ms(fn, *args, repeats=7):
  from jaxal.cli.benchmarks.roofline import best_seconds
  return 1000 * best_seconds(fn, *args, repeats=repeats)


def conv():
  from jaxal.models import conv as c
  cases = [((1024, 28, 28, 1), (5, 5, 1, 6), ((2, 2), (2, 2))),     # LeNet-5's first layer
           ((1024, 14, 14, 6), (5, 5, 6, 16), ((0, 0), (0, 0))),    # its second
           ((1024, 28, 28, 1), (5, 5, 1, 32), ((2, 2), (2, 2))),
           ((1024, 32, 32, 3), (3, 3, 3, 32), ((1, 1), (1, 1)))]
  for shape, ks, pads in cases:
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    k = jax.random.normal(jax.random.PRNGKey(1), ks) * 0.2
    tiled = lambda x, k, s, p: c.rows_conv(x, k, s, p, tile="train")   # training's tiles
    row = {name: _best_ms(jax.jit(lambda x, k, f=f: f(x, k, (1, 1), pads)), x, k)
           for name, f in (("xla", c.xla_conv), ("rows", c.rows_conv), ("rows in tiles", tiled),
                           ("im2col", c.im2col_conv))}
    print(f"{shape} * {ks}: " + ", ".join(f"{n} {t:.2f} ms" for n, t in row.items())
          + f"; hybrid's forward: {c.forward_impl(ks[2], ks[3])}", flush=True)


def pool():
  import flax.linen as nn
  from jaxal import models, training
  from jaxal.models import networks
  from jaxal.state import TrainConfig
  cfg = TrainConfig(epochs=50, batch_size=64, optimizer="sgd", learning_rate=0.01, momentum=0.9)
  tx = training.make_optimizer(cfg)
  x = jax.random.normal(jax.random.PRNGKey(0), (2000, 28, 28, 1)).round(1)   # ties, as on images
  y = jax.random.randint(jax.random.PRNGKey(1), (2000,), 0, 10)
  labeled = jnp.zeros(2000, bool).at[:150].set(True)
  out = {}
  for name in ("flax", "jaxal"):
    saved = networks.max_pool
    if name == "flax":
      networks.max_pool = lambda x, w, s, padding="VALID": nn.max_pool(x, w, s, padding=padding)
    try:
      model = models.get_model("lenet5", 10)
      v = training.init_variables(model, jax.random.PRNGKey(2), x[:1])
      fit = jax.jit(lambda v, o: training.fit(model, tx, v, o, jax.random.PRNGKey(3), x, y,
                                              labeled, cfg, 160)[0])
      o = tx.init(v["params"])
      ms = _best_ms(fit, v, o, repeats=3)
      out[name] = np.concatenate([np.ravel(a) for a in jax.tree.leaves(fit(v, o))])
    finally:
      networks.max_pool = saved
    print(f"{name} max_pool: {ms / 150:.2f} ms a step", flush=True)
  print("parameters identical after 150 steps:", bool(np.array_equal(out["flax"], out["jaxal"])))


def train():
  from jaxal import models, training
  from jaxal.models import conv as c
  from jaxal.state import TrainConfig
  x = jax.random.normal(jax.random.PRNGKey(0), (2000, 28, 28, 1)).round(1)
  y = jax.random.randint(jax.random.PRNGKey(1), (2000,), 0, 10)
  labeled = jnp.zeros(2000, bool).at[:192].set(True)      # 3 whole batches of 64 an epoch
  model = models.get_model("lenet5", 10)
  images = 50 * 192 / 64                                   # the work of one 64-image step

  def fit_fn(batch):
    cfg = TrainConfig(epochs=50, batch_size=batch, optimizer="sgd", learning_rate=0.01,
                      momentum=0.9)
    tx = training.make_optimizer(cfg)
    return tx, lambda v, o: training.fit(model, tx, v, o, jax.random.PRNGKey(3), x, y, labeled,
                                         cfg, 200)[0]

  v = training.init_variables(model, jax.random.PRNGKey(2), x[:1])
  row_tile = c.row_tile
  for impl, batch, tiles in (("hybrid", 64, "tiled"), ("hybrid", 64, "whole rows"),
                             ("hybrid_xla", 64, ""), ("hybrid", 32, "tiled"),
                             ("hybrid", 16, "tiled")):
    os.environ[c.ENV_VAR] = impl
    if tiles == "whole rows":      # change 4's row lowering: every layer in whole output rows
      c.row_tile = lambda ow, kw: ow
    try:
      tx, fit = fit_fn(batch)
      ms = _best_ms(jax.jit(fit), v, tx.init(v["params"]), repeats=3)
    finally:
      del os.environ[c.ENV_VAR]
      c.row_tile = row_tile
    print(f"{impl}{f' ({tiles})' if tiles else ''}, batch {batch}: {ms / images:.2f} ms per 64 "
          "images", flush=True)
  tx, fit = fit_fn(64)
  vs = jax.vmap(lambda k: training.init_variables(model, k, x[:1]))(
      jax.random.split(jax.random.PRNGKey(2), 3))
  os_ = jax.vmap(lambda v: tx.init(v["params"]))(vs)
  for name, f in (("lax.map", lambda vs, os_: jax.lax.map(lambda a: fit(*a), (vs, os_))),
                  ("vmap", jax.vmap(fit))):
    ms = _best_ms(jax.jit(f), vs, os_, repeats=3)
    print(f"3 seeds by {name}: {ms / images / 3:.2f} ms per 64 images a seed", flush=True)


def start(data_dir: str, seeds: int):
  from jaxal.cli.benchmarks.fmnist_bald import protocol_command, timed_command
  with tempfile.TemporaryDirectory() as tmp:
    work = os.path.join(tmp, "w")
    cmd = protocol_command(data_dir, 2, seeds, work, os.path.join(tmp, "cache"))
    for run in ("empty cache", "second run", "third run"):
      r = timed_command(cmd, work)
      print(f"{run}: wall {r['seconds']:.1f}s, round 0 took {r['first_round_seconds']:.2f}s and "
            f"started {r['first_round_starts_at']:.2f}s after the command", flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("probe", choices=("conv", "pool", "train", "start"))
  p.add_argument("--data_dir", default="")
  p.add_argument("--seeds", type=int, default=3)
  a = p.parse_args()
  if a.probe == "start":
    if not a.data_dir:
      p.error("start needs --data_dir (a Fashion-MNIST IDX folder)")
    start(a.data_dir, a.seeds)
  else:
    {"conv": conv, "pool": pool, "train": train}[a.probe]()


if __name__ == "__main__":
  main()
