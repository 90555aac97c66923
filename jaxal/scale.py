"""Where a run's pool lives: on one device (the default), split over a device mesh (`--mesh`), or
on the host, streamed to the device in blocks (`--pool_on=host`). `jaxal.experiment` asks
`choose` once per run, then `Layout` for the pool arrays and the round's compiled functions.

    layout = choose(cfg, ds, seeds=3, workdir=..., log=print)
    mean, std = layout.channel_stats(ds)
    pool, test = layout.arrays(ds, mean, std)          # only when not layout.default
    fns = layout.round_fns(round_fn, states, reporter)  # None: driver.make_round_fns as usual
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import host_pool, sharding
from jaxal.data import channel_stats, normalize
from jaxal.errors import ArgumentError
from jaxal.settings import ConfigError
from jaxal.state import LabeledArrays

POOL_ON = ("auto", "device", "host")
DEFAULTS = {"mesh": "auto", "pool_on": "auto", "device_memory_mb": 0, "host_block": 65536}


ScaleError = ConfigError   # a scale setting that cannot be used; the message names the flag


def _device_budget(mb: float) -> float:
  """Bytes a pool may take on the devices: --device_memory_mb, else what the devices report
  (half of it), else (CPU) a quarter of the machine's memory."""
  if mb:
    return float(mb) * 2**20
  stats = jax.local_devices()[0].memory_stats() or {}
  if stats.get("bytes_limit"):
    return 0.5 * stats["bytes_limit"] * jax.local_device_count()
  try:
    return 0.25 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return float("inf")


@dataclasses.dataclass
class Layout:
  mesh: Any = None          # jax.sharding.Mesh or None
  host: bool = False
  host_block: int = 65536
  path: str | None = None   # the pool's .npy (host)
  init_pool: Any = None     # host arrays for Round.init_states (labels, a sample image)

  @property
  def default(self) -> bool:
    return self.mesh is None and not self.host

  def channel_stats(self, ds):
    if self.host and self.path is not None:
      return host_pool.channel_stats(host_pool.streaming.NpyFile(self.path))
    return channel_stats(ds.x_train)

  def arrays(self, ds, mean, std) -> tuple[LabeledArrays, LabeledArrays]:
    norm = lambda v: normalize(v, mean, std)
    if self.host:
      pool = LabeledArrays(host_pool.HostImages(self.path, mean, std),
                           np.asarray(ds.y_train, np.int32))
      test = LabeledArrays(jnp.asarray(norm(ds.x_test)), jnp.asarray(ds.y_test, jnp.int32))
      return pool, test
    self.init_pool = LabeledArrays(norm(np.asarray(ds.x_train[:1])),
                                   np.asarray(ds.y_train, np.int32))
    split = sharding.pool_sharding(self.mesh)
    rep = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    pool = LabeledArrays(sharding.place(ds.x_train, split, norm),
                         sharding.place(np.asarray(ds.y_train, np.int32), split))
    test = LabeledArrays(sharding.place(ds.x_test, rep, norm),
                         sharding.place(np.asarray(ds.y_test, np.int32), rep))
    return pool, test

  def check(self, round_fn) -> None:
    if self.host:
      why = host_pool.unsupported(round_fn)
      if why:
        why = ArgumentError(why).render({"pool_subset": "--pool_subset", "stop_set": "--stop_set"})
        raise ScaleError(f"--pool_on=host streams scores only: {why}; use a strategy that needs "
                         "only scores (random, entropy, margin, least_confidence, bald, "
                         "variation_ratios, mean_std, power_bald, ...) or --pool_on=device.")

  def round_fns(self, round_fn, states, progress_hooks: bool = False):
    if self.host:
      return host_pool.host_round_fns(round_fn, self.host_block, progress_hooks)
    if self.mesh is not None:
      sharding.check_mesh(self.mesh, round_fn_pool_size(states), jax.tree.leaves(states)[0].shape[0])
      return sharding.make_sharded_round_fns(round_fn, self.mesh, states,
                                             progress_hooks=progress_hooks)
    return None


def round_fn_pool_size(states) -> int:
  return int(states.labeled.shape[-1])


def choose(cfg: Mapping[str, Any], ds, seeds: int, workdir: str,
           log: Callable[[str], None] = print) -> Layout:
  """The layout `cfg` asks for ("mesh", "pool_on", "device_memory_mb", "host_block"; defaults in
  `DEFAULTS`). Raises ScaleError naming the flag."""
  get = lambda k: cfg.get(k, DEFAULTS[k])
  pool_on, spec = str(get("pool_on")), str(get("mesh"))
  if pool_on not in POOL_ON:
    raise ScaleError(f"--pool_on: unknown value {pool_on!r}; accepted: {', '.join(POOL_ON)}.")
  block, mb = get("host_block"), get("device_memory_mb")
  if int(block) != block or block < 1:
    raise ScaleError(f"--host_block must be an integer >= 1, got {block!r}.")
  if not (isinstance(mb, (int, float)) and 0 <= mb < float("inf")):
    raise ScaleError(f"--device_memory_mb must be a number >= 0, got {mb!r}.")
  n = len(ds.y_train)
  pool_bytes = 4.0 * n * int(np.prod(ds.x_train.shape[1:]))
  host = pool_on == "host" or (pool_on == "auto" and pool_bytes > _device_budget(float(mb)))
  if host:
    if spec.strip().lower() not in ("auto", "none", "1"):
      raise ScaleError(f"--pool_on=host streams the pool through one device; --mesh={spec} "
                       "cannot split it too (set --mesh=none).")
    if jax.process_count() > 1:
      raise ScaleError("--pool_on=host runs in one process; drop --num_processes.")
    if cfg.get("oracle", "simulated") != "simulated":
      raise ScaleError(f"--pool_on=host runs with --oracle=simulated, not {cfg['oracle']}.")
    path = getattr(ds.x_train, "filename", None)
    if path is None or ds.x_train.offset != host_pool.streaming.NpyFile(path).offset:
      path = os.path.join(workdir, "pool_images.npy")   # an in-memory dataset: written once
      os.makedirs(workdir, exist_ok=True)
      np.save(path, np.ascontiguousarray(ds.x_train))
    log(f"pool on the host: {n} images ({pool_bytes / 2**30:.2f} GiB as float32) streamed from "
        f"{path} in blocks of {int(block)}")
    return Layout(host=True, host_block=int(block), path=str(path))
  try:
    mesh = sharding.make_mesh(spec)
  except ArgumentError as e:
    raise ScaleError(e.render({"mesh": "--mesh"})) from e
  if mesh is not None and spec.strip().lower() == "auto" and n % mesh.shape[sharding.POOL_AXIS]:
    d = sharding.auto_pool_devices(n)
    log(f"--mesh=auto: the pool's {n} items split evenly over {d} of the "
        f"{mesh.shape[sharding.POOL_AXIS]} devices")
    mesh = sharding.make_mesh(str(d))
  if mesh is not None:
    try:
      sharding.check_mesh(mesh, n, seeds)
    except ArgumentError as e:
      raise ScaleError(e.render({"mesh": "--mesh"})) from e
    log(f"mesh: {dict(mesh.shape)} over {jax.device_count()} devices "
        f"({jax.process_count()} process(es))")
  return Layout(mesh=mesh)
