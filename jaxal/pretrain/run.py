"""A pretraining run from a flat configuration to a workdir, resumable like active-learning runs.

`pretrain(cfg, workdir)` trains SimCLR on the pool's images (the training split; labels unused),
checkpointing every `checkpoint_every` steps with orbax under `<workdir>/checkpoints/`; calling it
again with the same settings continues from the newest checkpoint and ends with the same weights as
an uninterrupted run. At the end it writes

  encoder.npz      the whole network's variables in `jaxal.models.load_pretrained`'s format (trunk
                   pretrained, the layers after it as initialised), for `--train=finetune`
  encoder.json     model, dataset, channel statistics, embedding size, split sizes
  embeddings.npy   float32 [N_train + N_test, D]: the trunk's features of every training image, then
                   every test image, in the dataset's order (`--features` reads this layout)
  pretrain.json    settings, loss curve, throughput, wall time and the linear probe on all labels
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from jaxal import models
from jaxal.checkpointing import _quiet_orbax  # pylint: disable=protected-access
from jaxal.data import channel_stats, load_dataset, subsample
from jaxal.errors import ArgumentError
from jaxal.models.pretrained import save_pretrained
from jaxal.pretrain.augment import Augment
from jaxal.pretrain.probe import linear_probe
from jaxal.pretrain.steps import PretrainState, SimCLRNet, init_state, make_embed, make_train_steps
from jaxal.reporting import write_json_atomic

# Settings that a re-run may change without changing the result. `steps` too: the key of step t
# depends only on the seed and t, so a run extended to more steps equals one started with them.
RESUME_IGNORED = ("workdir", "overwrite", "probe_steps", "cache_dir", "log_every", "steps")


def check(cfg: Mapping[str, Any]) -> None:
  """ArgumentError naming the setting for a value that cannot work."""
  if cfg["method"] != "simclr":
    raise ArgumentError(f"{{method}}: unknown method {cfg['method']!r}; accepted: simclr.")
  if cfg["model"] not in models.MODELS:
    raise ArgumentError(f"{{model}}: unknown model {cfg['model']!r}; accepted: "
                        f"{', '.join(models.MODELS)}.")
  for key, low in (("steps", 1), ("batch_size", 2), ("projection_dim", 1), ("hidden", 1),
                   ("checkpoint_every", 0), ("probe_steps", 0), ("train_limit", 0)):
    if int(cfg[key]) != cfg[key] or cfg[key] < low:
      raise ArgumentError(f"{{{key}}} must be an integer >= {low}, got {cfg[key]!r}.")
  for key in ("learning_rate", "temperature"):
    if not cfg[key] > 0:
      raise ArgumentError(f"{{{key}}} must be > 0, got {cfg[key]!r}.")
  if not 0 < cfg["crop_min_scale"] <= 1:
    raise ArgumentError(f"{{crop_min_scale}} must be in (0, 1], got {cfg['crop_min_scale']!r}.")
  if not 0 <= cfg["jitter"] < 1:
    raise ArgumentError(f"{{jitter}} must be in [0, 1), got {cfg['jitter']!r}.")
  for key in ("noise_std", "weight_decay"):
    if not cfg[key] >= 0:
      raise ArgumentError(f"{{{key}}} must be >= 0, got {cfg[key]!r}.")


def _manager(workdir: str) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, cleanup_tmp_directories=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=options, item_names=("state", "meta"))


def _settings(cfg: Mapping[str, Any]) -> dict:
  return {k: v for k, v in sorted(cfg.items()) if k not in RESUME_IGNORED}


def _claim_workdir(cfg: Mapping[str, Any], workdir: str) -> None:
  """Writes the settings; refuses a workdir holding a run with other settings (unless overwrite)."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "pretrain_config.json")
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in _settings(cfg).items() if old.get(k) != v]
    if diff and not cfg.get("overwrite"):
      raise ArgumentError(f"{{workdir}} {workdir!r} holds a pretraining run with other settings "
                          f"({', '.join(diff)}); add --overwrite to replace it.")
    if diff:
      shutil.rmtree(os.path.join(workdir, "checkpoints"), ignore_errors=True)
  write_json_atomic(path, _settings(cfg))


def pretrain(cfg: Mapping[str, Any], workdir: str, log: Callable[[str], None] = print) -> dict:
  """Runs (or resumes) a pretraining run; returns the contents of pretrain.json."""
  cfg = dict(cfg)
  check(cfg)
  started = time.perf_counter()
  ds = load_dataset(cfg["dataset"], cfg["data_dir"] or None, cache_dir=cfg["cache_dir"] or None)
  pool = subsample(ds, int(cfg["train_limit"])).x_train if cfg["train_limit"] else ds.x_train
  _claim_workdir(cfg, workdir)
  mean, std = channel_stats(ds.x_train)
  std = np.where(std > 0, std, 1.0).astype(np.float32)
  backbone = models.get_model(cfg["model"], ds.num_classes)
  net = SimCLRNet(backbone, projection_dim=int(cfg["projection_dim"]), hidden=int(cfg["hidden"]))
  tx = optax.adamw(float(cfg["learning_rate"]), weight_decay=float(cfg["weight_decay"]))
  aug = Augment(crop_min_scale=float(cfg["crop_min_scale"]), flip=bool(cfg["flip"]),
                jitter=float(cfg["jitter"]), noise_std=float(cfg["noise_std"]))
  sample = jnp.zeros((1,) + ds.x_train.shape[1:], jnp.float32)
  seed, total, every = int(cfg["seed"]), int(cfg["steps"]), int(cfg["checkpoint_every"])
  chunk = max(1, int(cfg["log_every"]))
  state = init_state(net, tx, seed, sample)
  curve, chunks = [], []
  with _quiet_orbax():
    manager = _manager(workdir) if every else None
    if manager is not None and manager.latest_step() is not None:
      step = manager.latest_step()
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
      out = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
      state, curve = out["state"], out["meta"]["curve"]
      if step > total:
        raise ArgumentError(f"{{steps}}={total}: the workdir holds a checkpoint after step {step}; "
                            "give at least that many steps (or --overwrite).")
      log(f"resuming from checkpoint step {step} of {total}")
  train_steps = make_train_steps(net, tx, aug, int(cfg["batch_size"]), float(cfg["temperature"]))
  images, mean_j, std_j = jnp.asarray(pool), jnp.asarray(mean), jnp.asarray(std)
  log(f"{ds.name}: pretraining {cfg['method']} on {len(pool)} images {pool.shape[1:]} with the "
      f"trunk of {cfg['model']}, {total} steps of batch {cfg['batch_size']}")
  done = int(state.step)
  while done < total:
    n = min(chunk, total - done)
    if every:
      n = min(n, every - done % every)   # land on every checkpoint step
    t0 = time.perf_counter()
    state, losses = train_steps(state, images, mean_j, std_j, seed, n)
    loss = float(jnp.mean(losses))
    seconds = time.perf_counter() - t0
    done = int(state.step)
    curve.append([done, loss])
    chunks.append([n, seconds])
    log(f"step {done:>6}/{total}  loss {loss:.4f}  {2 * n * int(cfg['batch_size']) / seconds:,.0f} "
        f"views/s")
    if manager is not None and (done % every == 0 or done == total):
      with _quiet_orbax():
        manager.save(done, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   meta=ocp.args.JsonSave({"curve": curve})),
                     force=True)
        manager.wait_until_finished()
  if manager is not None:
    with _quiet_orbax():
      manager.close()
  return _finish(cfg, workdir, ds, backbone, net, state, mean, std, curve, chunks,
                 time.perf_counter() - started, log)


def _finish(cfg, workdir, ds, backbone, net, state: PretrainState, mean, std, curve, chunks,
            wall, log) -> dict:
  """Writes encoder.npz, encoder.json, embeddings.npy and pretrain.json (probe included)."""
  embed = make_embed(net)
  train_emb = embed(state.variables, ds.x_train, mean, std)
  test_emb = embed(state.variables, ds.x_test, mean, std)
  np.save(os.path.join(workdir, "embeddings.npy"), np.concatenate([train_emb, test_emb], axis=0))
  full = backbone.init(jax.random.PRNGKey(0), jnp.zeros((1,) + ds.x_train.shape[1:]),
                       train=False)
  full = jax.tree.map(np.asarray, dict(full))
  for collection, tree in state.variables.items():
    trunk = tree.get("backbone", {})
    full[collection] = {**full.get(collection, {}), **jax.tree.map(np.asarray, dict(trunk))}
  save_pretrained(full, os.path.join(workdir, "encoder.npz"))
  info = {"model": cfg["model"], "dataset": cfg["dataset"], "data_dir": cfg["data_dir"],
          "channel_mean": [float(v) for v in mean], "channel_std": [float(v) for v in std],
          "embedding_dim": int(train_emb.shape[1]), "train_size": int(len(ds.y_train)),
          "test_size": int(len(ds.y_test)), "num_classes": int(ds.num_classes)}
  write_json_atomic(os.path.join(workdir, "encoder.json"), info)
  timed = chunks[1:] or chunks   # the first chunk of this process includes compilation
  steps_s = (sum(n for n, _ in timed) / max(sum(s for _, s in timed), 1e-9)) if timed else None
  result = {"config": dict(cfg), "encoder": info, "curve": curve,
            "steps_per_second": steps_s,   # None when this process ran no step (resumed at the end)
            "images_per_second": steps_s and steps_s * int(cfg["batch_size"]),
            "wall_seconds": wall,
            "backend": jax.default_backend()}
  if cfg["probe_steps"]:
    result["linear_probe"] = linear_probe(train_emb, ds.y_train, test_emb, ds.y_test,
                                          ds.num_classes, steps=int(cfg["probe_steps"]))
    log(f"linear probe on all {len(ds.y_train)} labels: test accuracy "
        f"{result['linear_probe']['test_accuracy']:.4f}")
  write_json_atomic(os.path.join(workdir, "pretrain.json"), result)
  return result


__all__ = ["RESUME_IGNORED", "check", "pretrain"]
