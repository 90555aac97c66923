"""Pools that outgrow one device: the pool axis sharded over a `jax.sharding.Mesh`.

    mesh = pool_mesh()                               # every device, one axis named "pool"
    x, valid = shard_pool(x, mesh)                   # pad N to a multiple of the devices, shard
    scores = jax.jit(score_fn)(x)                    # each device scores its own shard
    picked = sharded_top_k(scores, candidates & valid, k, mesh)
    result = sharded_kmeans(key, features, k, mesh, mask=valid)

Selection is explicit (`shard_map`): every device takes the top k of its shard, the D * k candidates
are gathered (a few kilobytes) and the global top k is taken from them, with the same tie-breaking as
`jaxal.selection.primitives.top_k` (lower pool index first), so the result equals the unsharded one exactly.
k-means and scoring are the unchanged jitted functions applied to sharded inputs: XLA's SPMD
partitioner keeps the pool axis split and reduces the per-shard sums, counts and inertia across
devices (all-reduce), so nothing pool-sized is gathered on one device. Ensembles can be sharded
over their member axis the same way (`member_sharding`).

Several hosts: start every process with `initialize_distributed()` (which calls
`jax.distributed.initialize` from the environment variables JAXAL_COORDINATOR (host:port),
JAXAL_NUM_PROCESSES and JAXAL_PROCESS_ID, or from the cluster's own auto-detection when they are
unset), then `pool_mesh()` spans the devices of all hosts. On one CPU, simulate D devices with
`XLA_FLAGS=--xla_force_host_platform_device_count=D` set before JAX is imported.
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxal import kmeans as km
from jaxal.errors import ArgumentError

POOL_AXIS = "pool"

try:  # jax >= 0.6 exports shard_map at the top level.
  _shard_map = jax.shard_map
  _NO_CHECK = {"check_vma": False}
except AttributeError:  # pragma: no cover - older jax
  from jax.experimental.shard_map import shard_map as _shard_map
  _NO_CHECK = {"check_rep": False}


def pool_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A one-axis mesh named "pool" over `devices` (default: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("pool_mesh: devices is empty.")
  return Mesh(np.asarray(devices), (POOL_AXIS,))


def pool_sharding(mesh: Mesh) -> NamedSharding:
  """Rows split over the "pool" axis, everything else replicated."""
  return NamedSharding(mesh, P(POOL_AXIS))


def member_sharding(mesh: Mesh) -> NamedSharding:
  """For stacked ensemble variables [M, ...]: members split over the mesh axis (M must be a
  multiple of the mesh size)."""
  return NamedSharding(mesh, P(POOL_AXIS))


def shard_pool(x: jax.Array | np.ndarray, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
  """Pads the rows of `x` [N, ...] with zeros to a multiple of the mesh size and places them split
  over the mesh. Returns (sharded x [N', ...], valid bool [N'] sharded the same way: False on the
  padding, which every mask-taking function then ignores)."""
  n = x.shape[0]
  size = mesh.devices.size
  pad = (-n) % size
  if pad:
    x = np.concatenate([np.asarray(x), np.zeros((pad,) + x.shape[1:], np.asarray(x).dtype)])
  valid = np.arange(n + pad) < n
  sharding = pool_sharding(mesh)
  return jax.device_put(x, sharding), jax.device_put(valid, sharding)


def sharded_top_k(scores: jax.Array, candidates: jax.Array, k: int, mesh: Mesh) -> jax.Array:
  """`jaxal.selection.primitives.top_k` over a pool sharded on `mesh`: the k candidates with the highest
  scores (ties: lower index first), as int32 [k] global indices, replicated on every device.

  Each shard takes its own top min(k, shard size); the per-shard winners (values and global
  indices, in shard order) are all-gathered and the global top k is taken from them. Any global
  top-k item is in its shard's top k, and shards are contiguous in index order, so the result and
  its tie-breaking equal the unsharded top_k. `scores` and `candidates` are [N] with N a multiple
  of the mesh size (see `shard_pool`)."""
  size = mesh.devices.size
  n = scores.shape[0]
  if n % size:
    raise ValueError(f"sharded_top_k: the pool has {n} items, not a multiple of the {size} "
                     "devices; pad it with shard_pool.")
  local_n = n // size
  if not 1 <= k <= n:
    raise ValueError(f"sharded_top_k: k={k} must be between 1 and the pool size {n}.")
  local_k = min(k, local_n)

  def local(s, c):
    masked = jnp.where(c, s.astype(jnp.float32), -jnp.inf)
    vals, idx = jax.lax.top_k(masked, local_k)
    offset = jax.lax.axis_index(POOL_AXIS) * local_n
    vals = jax.lax.all_gather(vals, POOL_AXIS).reshape(-1)          # [size * local_k], shard order
    idx = jax.lax.all_gather(idx + offset, POOL_AXIS).reshape(-1)
    return idx[jax.lax.top_k(vals, k)[1]].astype(jnp.int32)

  # The output is the same on every device (computed from all-gathered values); the replication
  # check cannot see through top_k, hence check off.
  fn = _shard_map(local, mesh=mesh, in_specs=(P(POOL_AXIS), P(POOL_AXIS)), out_specs=P(),
                  **_NO_CHECK)
  return fn(scores, candidates)


_KMEANS_STATIC = ("k", "max_iter", "n_init", "chunk", "n_local_trials")


def sharded_kmeans(key: jax.Array, x: jax.Array, k: int, mesh: Mesh, *,
                   mask: jax.Array | None = None, **kwargs) -> km.KMeansResult:
  """`jaxal.kmeans.kmeans` with the points (and mask) split over `mesh`: the same jitted program,
  partitioned by XLA (per-shard distances, assignments and partial sums; sums, counts and inertia
  all-reduced). `x` is [N, d] with N a multiple of the mesh size (see `shard_pool`). Returns the
  usual KMeansResult with the assignment sharded like `x`."""
  size = mesh.devices.size
  if x.shape[0] % size:
    raise ValueError(f"sharded_kmeans: x has {x.shape[0]} rows, not a multiple of the {size} "
                     "devices; pad it with shard_pool.")
  sharding = pool_sharding(mesh)
  x = jax.device_put(x, sharding)
  if mask is not None:
    mask = jax.device_put(mask, sharding)
  fn = jax.jit(km.kmeans, static_argnames=_KMEANS_STATIC)
  return fn(key, x, k, mask=mask, **kwargs)


ENV_COORDINATOR = "JAXAL_COORDINATOR"
ENV_NUM_PROCESSES = "JAXAL_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXAL_PROCESS_ID"


def join(coordinator: str, num_processes: int, process_id: int) -> None:
  """Starts this process's part of a multi-process run (`jax.distributed.initialize`); on CPU the
  processes exchange collectives over gloo. Call it before any other JAX call. Raises
  ArgumentError naming {num_processes} / {process_id} / {coordinator_address}."""
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ArgumentError(f"{{process_id}}={process_id} must be in [0, {{num_processes}}="
                        f"{num_processes}).")
  if num_processes > 1 and not coordinator:
    raise ArgumentError("{num_processes} > 1 needs {coordinator_address} (host:port of process 0).")
  if os.environ.get("JAX_PLATFORMS", "").startswith("cpu") or not os.environ.get("JAX_PLATFORMS"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator or None,
                             num_processes=num_processes, process_id=process_id)


def initialize_distributed() -> bool:
  """Joins a multi-host run through `jax.distributed.initialize`. With JAXAL_COORDINATOR set
  (host:port of process 0), JAXAL_NUM_PROCESSES and JAXAL_PROCESS_ID must be set too; without
  them JAX's auto-detection (SLURM, Cloud TPU, ...) is used, and a machine outside any cluster
  stays a single process. Returns True when a multi-process runtime is active. Call it before any
  other JAX call."""
  addr = os.environ.get(ENV_COORDINATOR, "").strip()
  if addr:
    missing = [v for v in (ENV_NUM_PROCESSES, ENV_PROCESS_ID) if not os.environ.get(v, "").strip()]
    if missing:
      raise ValueError(f"{ENV_COORDINATOR}={addr!r} needs {' and '.join(missing)} as well.")
    try:
      num, pid = int(os.environ[ENV_NUM_PROCESSES]), int(os.environ[ENV_PROCESS_ID])
    except ValueError as e:
      raise ValueError(f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} must be integers.") from e
    if not 0 <= pid < num:
      raise ValueError(f"{ENV_PROCESS_ID}={pid} must be in [0, {ENV_NUM_PROCESSES}={num}).")
    jax.distributed.initialize(coordinator_address=addr, num_processes=num, process_id=pid)
  else:
    try:
      jax.distributed.initialize()   # a cluster JAX recognises (SLURM, Cloud TPU, ...)
    except ValueError:
      return False                   # none: a single process, nothing to join
  return jax.process_count() > 1


# -------------------------------------------------------------------------------------------------
# the sharded round: the same round function, with the pool and the per-item state on a mesh

SEED_AXIS = "seeds"


def make_mesh(spec: str, devices: Sequence[jax.Device] | None = None) -> Mesh | None:
  """The mesh a `--mesh` setting names, or None for the one-device path.

  "auto": every device (of every process) on the pool axis, None when there is only one; "none"
  or "1": None; "D": the first D devices on the pool axis; "PxS": P on the pool axis times S on a
  seeds axis (the seeds of one program split over S). Raises ArgumentError naming {mesh}."""
  devices = list(jax.devices() if devices is None else devices)
  text = str(spec).strip().lower()
  if text == "auto":
    return pool_mesh(devices) if len(devices) > 1 else None
  if text in ("none", "1", ""):
    return None
  try:
    shape = [int(v) for v in text.split("x")]
  except ValueError:
    shape = []
  if len(shape) not in (1, 2) or min(shape) < 1:
    raise ArgumentError(f"{{mesh}}={spec!r}: accepted: auto, none, D (devices on the pool axis) "
                        "or PxS (pool x seeds), e.g. 8 or 4x2.")
  size = int(np.prod(shape))
  if size > len(devices):
    raise ArgumentError(f"{{mesh}}={spec!r} needs {size} devices; {len(devices)} are visible.")
  if size == 1:
    return None
  grid = np.asarray(devices[:size]).reshape(shape)
  return Mesh(grid, (POOL_AXIS,) if len(shape) == 1 else (POOL_AXIS, SEED_AXIS))


def check_mesh(mesh: Mesh, pool_size: int, seeds: int) -> None:
  """The pool (and seed) axis must split evenly over the mesh: ArgumentError naming {mesh}."""
  p = mesh.shape[POOL_AXIS]
  if pool_size % p:
    raise ArgumentError(f"{{mesh}}: the pool has {pool_size} items, not a multiple of the {p} "
                        "devices on its axis; choose a mesh size that divides it (or a pool "
                        "size, e.g. with --train_limit).")
  s = mesh.shape.get(SEED_AXIS, 1)
  if seeds % s:
    raise ArgumentError(f"{{mesh}}: {seeds} seeds do not split over the {s} devices of the seeds "
                        "axis.")


def auto_pool_devices(pool_size: int, devices: Sequence[jax.Device] | None = None) -> int:
  """The largest device count <= the visible devices that divides `pool_size` (what "auto" uses
  when the pool does not split over every device)."""
  n = len(jax.devices() if devices is None else devices)
  return max(d for d in range(1, n + 1) if pool_size % d == 0)


def place(a, sharding: jax.sharding.Sharding, fn=None) -> jax.Array:
  """`a` (a host array, possibly memory-mapped, or a jax.Array) as a global array with `sharding`.
  Every process builds only the shards its devices hold, from `a[index]` (passed through `fn`
  when given, e.g. normalisation), so a process reads only its slice of a memory-mapped pool."""
  if fn is None and isinstance(a, jax.Array) and a.sharding == sharding:
    return a
  if isinstance(a, jax.Array):
    a = np.asarray(a)
  fn = fn or (lambda v: v)
  return jax.make_array_from_callback(a.shape, sharding, lambda idx: np.asarray(fn(a[idx])))


def state_shardings(states, mesh: Mesh):
  """Shardings of a stacked ALState [S, ...]: the per-item arrays (labeled, labels, selectable
  [S, N]) split over the pool axis, everything else (variables, keys, ...) replicated (split over
  the seeds axis when the mesh has one)."""
  seeds = SEED_AXIS if SEED_AXIS in mesh.axis_names else None
  lead = NamedSharding(mesh, P(seeds))
  # Several processes: the per-item state (a few bytes an item) is kept whole on every device, so
  # every process can read, record and checkpoint it; the pool images stay split.
  item = lead if jax.process_count() > 1 else NamedSharding(mesh, P(seeds, POOL_AXIS))
  return jax.tree.map(lambda _: lead, states).replace(labeled=item, labels=item, selectable=item)


def make_sharded_round_fns(round_fn, mesh: Mesh, states, seed_batching: str = "auto",
                           progress_hooks: bool = False):
  """(step, final) like `jaxal.driver.make_round_fns`, jitted with explicit shardings: the pool
  (images, labels) and the per-item state split over the pool axis, the test set and the metrics
  replicated. XLA's SPMD partitioner splits scoring, top-K and k-means sums over the devices; the
  labeled training set is gathered to every device by the training step's gather. `states` is a
  template of the stacked state (for its tree structure). Each call places its state first (a
  no-op when it already has these shardings)."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from jaxal.round import over_seeds  # pylint: disable=import-outside-toplevel
  from jaxal.state import LabeledArrays  # pylint: disable=import-outside-toplevel
  if progress_hooks and not round_fn.progress_hooks:
    round_fn = dataclasses.replace(round_fn, progress_hooks=True)
  st = state_shardings(states, mesh)
  rep = NamedSharding(mesh, P())
  data = LabeledArrays(pool_sharding(mesh), pool_sharding(mesh))
  step = jax.jit(over_seeds(round_fn, seed_batching), in_shardings=(st, data, rep),
                 out_shardings=(st, rep))
  final = jax.jit(over_seeds(round_fn.train_and_evaluate, seed_batching),
                  in_shardings=(st, data, rep), out_shardings=(st, rep))

  def placed(fn):
    def call(states, pool, test):
      return fn(jax.tree.map(place, states, st), pool, test)
    return call

  return placed(step), placed(final)
