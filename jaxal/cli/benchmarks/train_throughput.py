"""train-throughput: samples/s of one training epoch.

One epoch over 1,024 labels (batch 64, SGD), for lenet5 (28x28x1) and cnn3 (32x32x3), with jaxal's
`training.fit` and the backend's default convolution.

Baselines: the same with XLA's own convolution (`JAXAL_CONV_IMPL=xla`, i.e. plain
`flax.linen.Conv`; on CPU so slow in the loop that it is timed once over 256 labels), and plain
PyTorch (experiments/torch_reference.py) with --torch_python."""
from __future__ import annotations

import contextlib
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from jaxal.cli.benchmarks import common
from jaxal import models, training
from jaxal.models import conv as conv_lib
from jaxal.state import TrainConfig

FLAGS = flags.FLAGS


@contextlib.contextmanager
def _conv_impl(impl: str | None):
  old = os.environ.get(conv_lib.ENV_VAR)
  if impl is None:
    os.environ.pop(conv_lib.ENV_VAR, None)
  else:
    os.environ[conv_lib.ENV_VAR] = impl
  try:
    yield
  finally:
    if old is None:
      os.environ.pop(conv_lib.ENV_VAR, None)
    else:
      os.environ[conv_lib.ENV_VAR] = old


def train_throughput() -> dict:
  n = 1024
  tc = TrainConfig(epochs=1, batch_size=64, optimizer="sgd", learning_rate=0.01, momentum=0.9)
  tx = training.make_optimizer(tc)
  rng = np.random.default_rng(0)
  rows = []
  for name, shape in (("lenet5", (28, 28, 1)), ("cnn3", (32, 32, 3))):
    model = models.get_model(name, 10)
    x = jnp.asarray(rng.normal(size=(n, *shape)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, n).astype(np.int32))
    row = {"model": name}
    # XLA's own convolution gradients run so slowly inside `fit`'s loop on CPU (minutes per epoch
    # for cnn3) that the comparison with it is one epoch over the first 256 labels, timed once
    # after compilation, for both; the default path is also timed over 1,024 labels (median of
    # --repeats) for the comparison with PyTorch.
    for tag, impl, m, reps in (("default", None, n, FLAGS.repeats), ("default_256", None, 256, 1),
                               ("xla_conv", "xla", 256, 1)):
      lab = jnp.arange(n) < m
      with _conv_impl(impl):
        variables = training.init_variables(model, jax.random.PRNGKey(0), x[:1])
        fit = jax.jit(lambda v, o, k, lab=lab, m=m: training.fit(model, tx, v, o, k, x, y, lab,
                                                                  tc, m))
        opt_state = tx.init(variables["params"])
        fit_c, compile_s = common.compile_aot(fit, variables, opt_state, jax.random.PRNGKey(1))
      times = []
      for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fit_c(variables, opt_state, jax.random.PRNGKey(1)))
        times.append(time.perf_counter() - t0)
      med = statistics.median(times)
      row[tag] = {"conv": conv_lib.resolve_impl() if impl is None else impl, "labels": m,
                  "seconds_per_epoch": med, "all_seconds": times, "compile_seconds": compile_s,
                  "samples_per_second": m / med}
    rows.append(row)
  torch = common.torch_reference("train-throughput", f"--repeats={FLAGS.repeats}")
  if torch:
    for row, t in zip(rows, torch["results"]):
      row["torch"] = t
  print(f"\ntrain-throughput: one epoch over {n} labels, batch 64, SGD; samples/s (median of "
        f"{FLAGS.repeats}); backend {jax.default_backend()} ({os.cpu_count()} CPUs)")
  print(f"| model  | jaxal ({conv_lib.resolve_impl()}) | XLA conv | jaxal / XLA conv | PyTorch | "
        f"jaxal / PyTorch |")
  print("|--------|----------------|----------|------------------|---------|-----------------|")
  for r in rows:
    d, xla = r["default"]["samples_per_second"], r["xla_conv"]["samples_per_second"]
    d256 = r["default_256"]["samples_per_second"]
    t = r.get("torch", {}).get("samples_per_second")
    print(f"| {r['model']:6} | {d:14.0f} | {xla:8.0f} | {d256 / xla:15.2f}x | "
          f"{t if t else float('nan'):7.0f} | {(d / t if t else float('nan')):14.2f}x |")
  return {"workload": "train-throughput", "labels": n, "batch_size": 64, "repeats": FLAGS.repeats,
          "env": common.env(), "results": rows, "torch": torch}
