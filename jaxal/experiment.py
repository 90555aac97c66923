"""An experiment grid (strategies x seeds on one dataset and model) from a flat configuration to a
results directory: `config.json`, `results.json`, `curves.png`, `summary.md`.

This is the library side of `python -m experiments.run`; notebooks can call `run_experiment` with a
`ConfigDict` (or any mapping with the same keys) directly.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Mapping, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import checkpointing, human, loop, models, reporting, scoring, stopping, strategies, \
    training
from jaxal.data import (Dataset, DatasetError, channel_stats, load_class_map, load_dataset,
                        make_splits, merge_classes, noise_dataset, normalize, subsample,
                        subset_classes)
from jaxal.state import RoundConfig, TrainConfig


class ConfigError(ValueError):
  """A setting that cannot be used; the message names the flag and what it accepts."""


DATASET_KINDS = ("digits", "idx", "folder", "npz", "tfds:<name>")
NOISE_KINDS = ("none", "gaussian", "salt_and_pepper")


# Strategy hyper-parameters passed as they are from the flat configuration to RoundConfig.
STRATEGY_SETTINGS = ("batchbald_configs", "power_beta", "graph_subset", "typiclust_max_clusters",
                     "typiclust_neighbors", "probcover_delta", "probcover_purity",
                     "cluster_margin_factor", "cluster_margin_threshold")


# Settings added in later versions, with the values that runs started before them used.
LATER_SETTINGS = {
    "oracle": "simulated", "noise": "none", "noise_fraction": 0.1, "noise_std": 0.1,
    "noise_amount": 0.05, "noise_splits": "train", "noise_seed": 0, "pretrained": "",
    "stop_labels": 0, "stop_interactions": 0, "stop_min_uncertainty": 0.0, "stop_agreement": 0.0,
    "stop_patience": 1, "stop_set": 0, "batchbald_configs": 1000, "power_beta": 1.0,
    "graph_subset": 5000, "typiclust_max_clusters": 500, "typiclust_neighbors": 20,
    "probcover_delta": 0.0, "probcover_purity": 0.95, "cluster_margin_factor": 10.0,
    "cluster_margin_threshold": 0.0, "model_selection": "last", "val_every": 1,
    "early_stopping": 0, "train_limit": 0, "test_limit": 0, "test_mc_samples": 0}


def stop_rules(cfg: Mapping[str, Any]) -> stopping.StopRules:
  """The stopping rules of a flat configuration; a bad value is a ConfigError naming its flag."""
  values = {}
  for field, flag, kind in (("max_labels", "stop_labels", int),
                            ("max_interactions", "stop_interactions", int),
                            ("min_uncertainty", "stop_min_uncertainty", float),
                            ("agreement", "stop_agreement", float),
                            ("patience", "stop_patience", int)):
    try:
      values[field] = kind(cfg[flag])
    except (TypeError, ValueError) as e:
      raise ConfigError(f"--{flag} must be a number, got {cfg[flag]!r}.") from e
  try:
    return stopping.StopRules(**values)
  except ValueError as e:
    raise ConfigError(str(e)) from e


def parse_list(text: str) -> list[str]:
  return [t.strip() for t in str(text).split(",") if t.strip()]


def validate(cfg: Mapping[str, Any]) -> None:
  """Checks every setting that can be checked before loading data; raises ConfigError."""
  ds = str(cfg["dataset"])
  if ds not in DATASET_KINDS[:-1] and not (ds.startswith("tfds:") and len(ds) > 5):
    raise ConfigError(f"--dataset: unknown dataset {ds!r}; accepted: {', '.join(DATASET_KINDS)}.")
  if ds in ("idx", "folder", "npz") and not cfg["data_dir"]:
    raise ConfigError(f"--data_dir is required with --dataset={ds}.")
  if cfg["model"] not in models.MODELS:
    raise ConfigError(f"--model: unknown model {cfg['model']!r}; accepted: "
                      f"{', '.join(models.MODELS)}.")
  names = parse_list(cfg["strategies"])
  if not names:
    raise ConfigError(f"--strategies is empty; accepted: {', '.join(strategies.STRATEGIES)}.")
  for name in names:
    try:
      strategies.get_strategy(name)
    except ValueError as e:
      raise ConfigError(str(e)) from e
  if cfg["hybrid_score"] not in scoring.SAMPLE_SCORES:
    raise ConfigError(f"--hybrid_score: unknown score {cfg['hybrid_score']!r}; accepted: "
                      f"{', '.join(scoring.SAMPLE_SCORES)}.")
  kinds = {strategies.get_strategy(n).kind for n in names}
  if kinds & {"hybrid", "hybrid_balanced"}:
    if not 0 < cfg["alpha"] <= 1:
      raise ConfigError(f"--alpha must be in (0, 1], got {cfg['alpha']}.")
    n_top = math.ceil(cfg["alpha"] * cfg["query_size"] - 1e-9)
    if cfg["alpha"] < 1 and not 1 <= cfg["n_clusters"] <= n_top:
      raise ConfigError(f"--n_clusters={cfg['n_clusters']} must be between 1 and the uncertain "
                        f"share ceil(--alpha * --query_size) = {n_top}.")
  if "cluster" in kinds:
    if not 0 < cfg["purity"] <= 1:
      raise ConfigError(f"--purity must be in (0, 1], got {cfg['purity']}.")
    if cfg["clusters_per_round"] < 1:
      raise ConfigError(f"--clusters_per_round must be >= 1 for cluster strategies, got "
                        f"{cfg['clusters_per_round']}.")
    if cfg["cluster_size"] < 1:
      raise ConfigError(f"--cluster_size must be >= 1, got {cfg['cluster_size']}.")
  if len(set(names)) != len(names):
    raise ConfigError(f"--strategies names a strategy twice: {cfg['strategies']!r}.")
  if cfg["uncertainty"] not in scoring.METHODS:
    raise ConfigError(f"--uncertainty: unknown method {cfg['uncertainty']!r}; accepted: "
                      f"{', '.join(scoring.METHODS)}.")
  if cfg["uncertainty"] == "deterministic":
    needs = [n for n in names if n in scoring.NEEDS_SAMPLES
             or (strategies.get_strategy(n).kind == "pool"
                 and strategies.get_strategy(n).needs_several_samples)]
    if needs:
      raise ConfigError(f"--strategies={','.join(needs)} needs several predictive samples; set "
                        "--uncertainty=mc_dropout or --uncertainty=ensemble.")
  if cfg["seed_batching"] not in loop.SEED_BATCHING:
    raise ConfigError(f"--seed_batching: unknown value {cfg['seed_batching']!r}; accepted: "
                      f"{', '.join(loop.SEED_BATCHING)}.")
  if cfg["optimizer"] not in training.OPTIMIZERS:
    raise ConfigError(f"--optimizer: unknown optimizer {cfg['optimizer']!r}; accepted: "
                      f"{', '.join(training.OPTIMIZERS)}.")
  for flag, low in (("seeds", 1), ("initial_size", 1), ("query_size", 1), ("rounds", 0),
                    ("epochs", 1), ("batch_size", 1), ("val_size", 0), ("eval_batch_size", 1),
                    ("mc_samples", 1), ("ensemble_size", 1), ("pool_subset", 0),
                    ("train_limit", 0), ("test_limit", 0), ("test_mc_samples", 0)):
    if int(cfg[flag]) != cfg[flag] or cfg[flag] < low:
      raise ConfigError(f"--{flag} must be an integer >= {low}, got {cfg[flag]!r}.")
  if cfg["test_mc_samples"] and cfg["uncertainty"] != "mc_dropout":
    raise ConfigError(f"--test_mc_samples={cfg['test_mc_samples']} averages MC-dropout passes at "
                      f"test time and needs --uncertainty=mc_dropout (got "
                      f"{cfg['uncertainty']!r}); set --test_mc_samples=0 otherwise.")
  if cfg["model_selection"] not in training.MODEL_SELECTIONS:
    raise ConfigError(f"--model_selection: unknown value {cfg['model_selection']!r}; accepted: "
                      f"{', '.join(training.MODEL_SELECTIONS)}.")
  for flag, low in (("val_every", 1), ("early_stopping", 0)):
    if int(cfg[flag]) != cfg[flag] or cfg[flag] < low:
      raise ConfigError(f"--{flag} must be an integer >= {low}, got {cfg[flag]!r}.")
  if cfg["model_selection"] == "best_val" and cfg["val_size"] < 1:
    raise ConfigError("--model_selection=best_val picks the epoch on the validation set: set "
                      f"--val_size > 0 (got {cfg['val_size']}).")
  for flag, unset in (("early_stopping", 0), ("val_every", 1)):
    if cfg[flag] != unset and cfg["model_selection"] != "best_val":
      raise ConfigError(f"--{flag}={cfg[flag]} needs --model_selection=best_val.")
  if not (cfg["learning_rate"] > 0 and math.isfinite(cfg["learning_rate"])):
    raise ConfigError(f"--learning_rate must be a finite number > 0, got {cfg['learning_rate']}.")
  if not 0 <= cfg["momentum"] < 1:
    raise ConfigError(f"--momentum must be in [0, 1), got {cfg['momentum']}.")
  for flag in ("weight_decay", "l2_per_label"):
    if not (cfg[flag] >= 0 and math.isfinite(cfg[flag])):
      raise ConfigError(f"--{flag} must be a finite number >= 0, got {cfg[flag]}.")
  if not 0 < cfg["test_fraction"] < 1:
    raise ConfigError(f"--test_fraction must be in (0, 1), got {cfg['test_fraction']}.")
  if cfg["classes"] and cfg["class_map"]:
    raise ConfigError("--classes and --class_map cannot be combined; merge with --class_map "
                      "(it may leave classes out) or subset with --classes.")
  _validate_oracle(cfg, names)
  if cfg["noise"] not in NOISE_KINDS:
    raise ConfigError(f"--noise: unknown noise {cfg['noise']!r}; accepted: "
                      f"{', '.join(NOISE_KINDS)}.")
  if cfg["noise"] != "none" and not 0 < cfg["noise_fraction"] <= 1:
    raise ConfigError(f"--noise_fraction must be in (0, 1], got {cfg['noise_fraction']}.")
  splits = parse_list(cfg["noise_splits"])
  if cfg["noise"] != "none" and (not splits or set(splits) - {"train", "test"}):
    raise ConfigError(f"--noise_splits={cfg['noise_splits']!r}: accepted: train, test or "
                      "train,test.")
  if cfg["pretrained"] and not os.path.isfile(cfg["pretrained"]):
    raise ConfigError(f"--pretrained: no file {cfg['pretrained']!r} (an .npz of weights; see "
                      "experiments/convert_torchvision_resnet.py).")
  rules = stop_rules(cfg)
  if rules.needs_stop_set and cfg["stop_set"] < 1:
    raise ConfigError("--stop_min_uncertainty / --stop_agreement need a stop set: set --stop_set "
                      "to a positive size (e.g. 1000).")
  if int(cfg["stop_set"]) != cfg["stop_set"] or cfg["stop_set"] < 0:
    raise ConfigError(f"--stop_set must be an integer >= 0, got {cfg['stop_set']!r}.")
  if rules.active and cfg["oracle"] != "simulated":
    raise ConfigError(f"--stop_* rules apply to simulated runs; with --oracle={cfg['oracle']} "
                      "the person decides when to stop.")
  for flag, low in (("batchbald_configs", 1), ("typiclust_max_clusters", 1),
                    ("typiclust_neighbors", 1), ("graph_subset", 0)):
    if int(cfg[flag]) != cfg[flag] or cfg[flag] < low:
      raise ConfigError(f"--{flag} must be an integer >= {low}, got {cfg[flag]!r}.")
  if not cfg["power_beta"] > 0:
    raise ConfigError(f"--power_beta must be > 0, got {cfg['power_beta']}.")
  if not 0 < cfg["probcover_purity"] <= 1:
    raise ConfigError(f"--probcover_purity must be in (0, 1], got {cfg['probcover_purity']}.")
  if cfg["probcover_delta"] < 0:
    raise ConfigError(f"--probcover_delta must be >= 0 (0 = automatic), got "
                      f"{cfg['probcover_delta']}.")
  if cfg["cluster_margin_factor"] < 1:
    raise ConfigError(f"--cluster_margin_factor must be >= 1, got {cfg['cluster_margin_factor']}.")
  if cfg["cluster_margin_threshold"] < 0:
    raise ConfigError(f"--cluster_margin_threshold must be >= 0, got "
                      f"{cfg['cluster_margin_threshold']}.")


def _validate_oracle(cfg: Mapping[str, Any], names: list[str]) -> None:
  """`--oracle`: a person labels one run (one seed, one strategy), checkpointed every round."""
  oracle = cfg.get("oracle", "simulated")
  if oracle not in human.ORACLES:
    raise ConfigError(f"--oracle: unknown oracle {oracle!r}; accepted: {', '.join(human.ORACLES)}.")
  if oracle == "simulated":
    return
  wrong = []
  if cfg["seeds"] != 1:
    wrong.append(f"--seeds=1 (got {cfg['seeds']})")
  if len(names) != 1:
    wrong.append(f"a single name in --strategies (got {len(names)}: {','.join(names)})")
  if wrong:
    raise ConfigError(f"--oracle={oracle}: a person labels one run; set {' and '.join(wrong)}.")
  strategy = strategies.get_strategy(names[0], cfg["hybrid_score"])
  if strategy.kind == "cluster" and strategy.clusters_first and strategy.images != "none":
    raise ConfigError(f"--oracle={oracle} with --strategies={names[0]}: the images of "
                      "cluster+<score> are chosen after the clusters are answered, which a person "
                      "cannot do in one question yet; use cluster or <score>+cluster.")
  if cfg.get("checkpoint_every", 1) != 1:
    raise ConfigError(f"--oracle={oracle} saves after every round: --checkpoint_every must be 1, "
                      f"got {cfg.get('checkpoint_every')!r}.")


def _as_class(token: str):
  return int(token) if token.lstrip("-").isdigit() else token


def prepare_dataset(cfg: Mapping[str, Any]) -> Dataset:
  """Loads the dataset and applies the class subset or merge; errors name the flag at fault."""
  ds = load_dataset(cfg["dataset"], cfg["data_dir"] or None, test_fraction=cfg["test_fraction"],
                    cache_dir=cfg["cache_dir"] or None)
  if cfg["classes"]:
    try:
      ds = subset_classes(ds, [_as_class(t) for t in parse_list(cfg["classes"])])
    except DatasetError as e:
      raise ConfigError(f"--classes: {e}") from e
  if cfg["class_map"]:
    try:
      ds = merge_classes(ds, load_class_map(cfg["class_map"]), drop_unmapped=True)
    except DatasetError as e:
      raise ConfigError(f"--class_map: {e}") from e
  if cfg["train_limit"] or cfg["test_limit"]:
    try:
      ds = subsample(ds, int(cfg["train_limit"]), int(cfg["test_limit"]))
    except DatasetError as e:
      raise ConfigError(str(e)) from e
  if cfg["noise"] != "none":
    # The same corrupted dataset for every seed and strategy (the papers corrupt the data once).
    try:
      ds, _ = noise_dataset(ds, cfg["noise"], float(cfg["noise_fraction"]),
                            std=float(cfg["noise_std"]), amount=float(cfg["noise_amount"]),
                            seed=int(cfg["noise_seed"]), splits=tuple(parse_list(
                                cfg["noise_splits"])))
    except ValueError as e:
      raise ConfigError(str(e)) from e
  return ds


def check_budget(cfg: Mapping[str, Any], n_train: int) -> None:
  selectable = n_train - cfg["val_size"]
  need = cfg["initial_size"] + cfg["rounds"] * cfg["query_size"]
  if cfg["val_size"] >= n_train:
    raise ConfigError(f"--val_size={cfg['val_size']} leaves no pool: the training set has "
                      f"{n_train} items.")
  if cfg["initial_size"] > selectable:
    raise ConfigError(f"--initial_size={cfg['initial_size']} is larger than the pool "
                      f"({selectable} items after --val_size={cfg['val_size']}).")
  if need > selectable:
    raise ConfigError(
        f"--initial_size + --rounds * --query_size = {cfg['initial_size']} + {cfg['rounds']} * "
        f"{cfg['query_size']} = {need} exceeds the pool ({selectable} items after "
        f"--val_size={cfg['val_size']}); lower --rounds or --query_size.")
  if cfg["stop_set"] > selectable:
    raise ConfigError(f"--stop_set={cfg['stop_set']} exceeds the selectable pool ({selectable} "
                      f"items after --val_size={cfg['val_size']}).")
  if cfg["pool_subset"]:
    last_round_candidates = selectable - (need - cfg["query_size"])
    if not cfg["query_size"] <= cfg["pool_subset"] <= last_round_candidates:
      raise ConfigError(f"--pool_subset={cfg['pool_subset']} must be between --query_size="
                        f"{cfg['query_size']} and the unlabeled items left in the last round "
                        f"({last_round_candidates}), or 0 to score the whole pool.")


def train_config(cfg: Mapping[str, Any]) -> TrainConfig:
  return TrainConfig(epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]),
                     optimizer=cfg["optimizer"], learning_rate=float(cfg["learning_rate"]),
                     momentum=float(cfg["momentum"]), weight_decay=float(cfg["weight_decay"]),
                     l2_per_label=float(cfg["l2_per_label"]),
                     reinit=bool(cfg["reinit"]), same_init=bool(cfg["same_init"]),
                     eval_batch_size=int(cfg["eval_batch_size"]),
                     model_selection=cfg["model_selection"], val_every=int(cfg["val_every"]),
                     early_stopping=int(cfg["early_stopping"]))


def run_experiment(cfg: Mapping[str, Any], workdir: str,
                   log: Callable[[str], None] = print, stdin: TextIO | None = None,
                   stdout: TextIO | None = None) -> dict:
  """Runs every strategy for every seed and writes the results directory. Returns the results.

  With `oracle` "human" or "terminal" a person answers (`jaxal.human.run_human`; `stdin` and
  `stdout`, default the process's, carry the terminal session). When the run stops to wait for
  answers, the results hold the rounds done so far and "paused": the message saying what to do
  (also logged); running again with the same settings continues.

  With `checkpoint_every` > 0 (default 1) the stacked seed state and the records of each strategy
  are checkpointed under `<workdir>/checkpoints/<strategy>/` (`jaxal.checkpointing`), and calling
  again with the same settings resumes from the newest good checkpoint: the results equal those of
  an uninterrupted run. A finished run only rewrites its reports. A workdir holding a run with
  different settings raises ConfigError listing them, unless `overwrite` is true."""
  cfg = dict(cfg)
  validate(cfg)
  every, keep, overwrite = _checkpoint_settings(cfg)
  try:
    ds = prepare_dataset(cfg)
  except DatasetError as e:
    raise ConfigError(f"--dataset={cfg['dataset']} --data_dir={cfg['data_dir']!r}: {e}") from e
  check_budget(cfg, len(ds.y_train))
  seeds = list(range(int(cfg["seeds"])))
  try:
    splits = [make_splits(ds.y_train, ds.num_classes, cfg["initial_size"], cfg["val_size"], s)
              for s in seeds]
  except DatasetError as e:
    raise ConfigError(f"--{e}") from e
  mean, std = channel_stats(ds.x_train)
  pool = loop.LabeledArrays(jnp.asarray(normalize(ds.x_train, mean, std)),
                            jnp.asarray(ds.y_train, jnp.int32))
  test = loop.LabeledArrays(jnp.asarray(normalize(ds.x_test, mean, std)),
                            jnp.asarray(ds.y_test, jnp.int32))
  extra = {"pretrained": cfg["pretrained"]} if cfg["pretrained"] else {}
  try:
    model = models.get_model(cfg["model"], ds.num_classes, **extra)
  except TypeError as e:
    raise ConfigError(f"--pretrained: model {cfg['model']!r} cannot load pretrained weights "
                      "(resnet18 and resnet18_imagenet can).") from e
  try:
    scoring.check_method(model, cfg["uncertainty"])
  except ValueError as e:
    raise ConfigError(str(e)) from e
  tc = train_config(cfg)
  tx = training.make_optimizer(tc)
  capacity = cfg["initial_size"] + cfg["rounds"] * cfg["query_size"]

  config_record = {**cfg, "workdir": workdir, "num_classes": ds.num_classes,
                   "class_names": list(ds.class_names), "train_size": int(len(ds.y_train)),
                   "test_size": int(len(ds.y_test)), "image_shape": list(ds.image_shape),
                   "channel_mean": [float(v) for v in mean], "channel_std": [float(v) for v in std],
                   "jax_version": jax.__version__, "backend": jax.default_backend(),
                   "dropout_masks": models.DROPOUT_MASKS}
  names = parse_list(cfg["strategies"])
  previous = _prepare_workdir(workdir, config_record, overwrite, log)
  done = _complete_runs(previous, names, seeds, int(cfg["rounds"]))
  if len(done) == len(names):
    log(f"the run in {workdir} is already complete ({len(names)} strategies x {len(seeds)} seeds "
        f"x {cfg['rounds']} rounds); rewriting results.json, curves.png and summary.md only.")
    results = {"config": config_record,
               "runs": [{"strategy": n, **rec} for n in names for rec in done[n]]}
    write_results(results, workdir)
    return results
  reporting.write_json_atomic(os.path.join(workdir, "config.json"), config_record)
  log(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test, {ds.num_classes} classes, "
      f"images {ds.image_shape}; model {cfg['model']} ({cfg['uncertainty']}); "
      f"{len(seeds)} seeds in one program ({cfg['seed_batching']}); "
      f"backend {jax.default_backend()}")
  if every:
    log(f"checkpoints: every {every} round(s), newest {keep} kept, in "
        f"{os.path.join(workdir, 'checkpoints')}")

  results = {"config": config_record, "runs": []}
  for name in names:
    strategy = strategies.get_strategy(name, cfg["hybrid_score"])
    clustered = strategy.kind == "cluster"
    num_clusters = max(1, round((len(ds.y_train) - cfg["val_size"]) / cfg["cluster_size"]))
    if clustered and cfg["clusters_per_round"] > num_clusters:
      raise ConfigError(f"--clusters_per_round={cfg['clusters_per_round']} exceeds the "
                        f"{num_clusters} clusters (selectable pool / --cluster_size).")
    rcfg = RoundConfig(strategy=name, query_size=int(cfg["query_size"]),
                       # Cluster annotation labels a data-dependent number of items per round.
                       capacity=len(ds.y_train) if clustered else capacity,
                       hybrid_score=cfg["hybrid_score"], alpha=float(cfg["alpha"]),
                       n_clusters=int(cfg["n_clusters"]),
                       num_clusters=num_clusters if clustered else 0,
                       clusters_per_round=int(cfg["clusters_per_round"]) if clustered else 0,
                       purity=float(cfg["purity"]),
                       num_classes=ds.num_classes, train=tc, uncertainty=cfg["uncertainty"],
                       mc_samples=int(cfg["mc_samples"]),
                       ensemble_size=int(cfg["ensemble_size"]),
                       pool_subset=int(cfg["pool_subset"]),
                       test_mc_samples=int(cfg["test_mc_samples"]),
                       **{k: type(getattr(RoundConfig, k))(cfg[k]) for k in STRATEGY_SETTINGS},
                       stop_set=int(cfg["stop_set"]))
    started = time.perf_counter()

    def progress(p, name=name):
      note = " (includes compilation)" if p["first"] else ""
      log(f"[{name}] round {p['round']:>3}/{cfg['rounds']}  labels {p['labels']:>5}  "
          f"test acc {p['test_accuracy']:.4f} (mean of {len(seeds)})  {p['seconds']:.2f}s{note}")

    if name in done:
      log(f"[{name}] already complete; kept from the previous run")
      records = done[name]
    elif cfg.get("oracle", "simulated") in human.HUMAN_ORACLES:
      records, paused = human.run_human(
          model, tx, rcfg, pool, test, seeds[0], splits[0], int(cfg["rounds"]),
          images=ds.x_train, class_names=ds.class_names, train_index=ds.train_index,
          workdir=workdir, mode=cfg["oracle"], keep=keep, seed_batching=cfg["seed_batching"],
          log=log, stdin=stdin, stdout=stdout)
      if paused:
        results["runs"] += [{"strategy": name, **rec} for rec in records]
        if any(rec["rounds"] for rec in records):
          write_results(results, workdir)
        log(paused)
        results["paused"] = paused
        return results
    else:
      records = _run_strategy(model, tx, rcfg, pool, test, seeds, splits, cfg, ds.train_index,
                              workdir, every, keep, progress, log)
    for rec in records:
      results["runs"].append({"strategy": name, **rec})
    log(f"[{name}] done in {time.perf_counter() - started:.1f}s")
    write_results(results, workdir)
  return results


def write_results(results: Mapping, workdir: str) -> None:
  """results.json, curves.png and summary.md, each written atomically."""
  reporting.write_json_atomic(os.path.join(workdir, "results.json"), results)
  cfg = results["config"]
  title = f"{cfg.get('dataset')} / {cfg.get('model')}, {cfg.get('seeds')} seeds"
  reporting.plot_curves(results["runs"], os.path.join(workdir, "curves.png"), title=title)
  reporting.plot_curves(results["runs"], os.path.join(workdir, "curves_interactions.png"),
                        x_key="interactions", title=title)
  reporting.write_atomic(os.path.join(workdir, "summary.md"), reporting.summary_markdown(results))


# --------------------------------------------------------------------------------------------------
# checkpoints and resumption

# Settings that do not change the results: a resumed run may change them freely.
RESUME_IGNORED = ("workdir", "cache_dir", "overwrite", "checkpoint_every", "keep_checkpoints",
                  "jax_version", "backend", "seed_batching", "dropout_masks")


def _checkpoint_settings(cfg: Mapping[str, Any]) -> tuple[int, int, bool]:
  """(checkpoint_every, keep_checkpoints, overwrite), checked; defaults 1, 2, False."""
  every = cfg.get("checkpoint_every", 1)
  keep = cfg.get("keep_checkpoints", 2)
  if int(every) != every or every < 0:
    raise ConfigError(f"--checkpoint_every must be an integer >= 0 (0 = no checkpoints), got "
                      f"{every!r}.")
  if int(keep) != keep or keep < 1:
    raise ConfigError(f"--keep_checkpoints must be an integer >= 1, got {keep!r}.")
  return int(every), int(keep), bool(cfg.get("overwrite", False))


def _show(value: Any) -> str:
  return "(unset)" if value is _MISSING else json.dumps(value)


_MISSING = object()


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """Settings that differ between two config records, as "key old -> new" in key order, ignoring
  `RESUME_IGNORED`. Values are compared after a JSON round trip (lists == tuples)."""
  old, new = json.loads(json.dumps(dict(old))), json.loads(json.dumps(dict(new)))
  diffs = []
  for key in sorted(set(new) | set(old)):
    if key in RESUME_IGNORED:
      continue
    a, b = old.get(key, _MISSING), new.get(key, _MISSING)
    if a != b:
      diffs.append(f"{key} {_show(a)} -> {_show(b)}")
  return diffs


def _prepare_workdir(workdir: str, config_record: Mapping[str, Any], overwrite: bool,
                     log: Callable[[str], None]) -> Mapping | None:
  """Checks that `workdir` is empty or holds a run with the same settings (else ConfigError),
  removes its checkpoints with `overwrite`, and returns the previous results.json (or None)."""
  import shutil  # pylint: disable=import-outside-toplevel
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  if overwrite:
    ckpt = os.path.join(workdir, "checkpoints")
    if os.path.isdir(ckpt) or os.path.exists(config_path):
      log(f"--overwrite: replacing the run in {workdir}")
    shutil.rmtree(ckpt, ignore_errors=True)
    human.remove_rounds(workdir)
    return None
  if not os.path.exists(config_path):
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
      raise ConfigError(f"--workdir={workdir} holds checkpoints but no config.json; use "
                        "--overwrite to replace them.")
    return None
  try:
    with open(config_path) as f:
      old = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"--workdir={workdir}: cannot read its config.json ({e}); use --overwrite "
                      "to replace the run.") from e
  diffs = config_differences(_comparable(old), _comparable(config_record))
  if diffs:
    raise ConfigError(f"--workdir={workdir} holds a run with different settings: "
                      f"{', '.join(diffs)}; use --overwrite to replace it.")
  for key in ("jax_version", "backend", "dropout_masks"):
    # Runs from before session 3 drew Flax's dropout masks: the same distribution, another stream.
    was = old.get(key, "flax" if key == "dropout_masks" else None)
    if was != config_record[key]:
      log(f"note: the run in {workdir} was started with {key} {was}; resuming with "
          f"{config_record[key]} may not reproduce it bit for bit.")
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      previous = json.load(f)
  except (OSError, ValueError):
    return None
  if config_differences(_comparable(previous.get("config", {})), _comparable(config_record)):
    return None
  return previous


def _comparable(record: Mapping[str, Any]) -> dict:
  """A config record as compared for resuming: a record from before `oracle` existed is a
  simulated run, and "terminal" and "human" are the same run (a person answering through the
  terminal or the files, which share labels.csv), so either can take over from the other."""
  # Settings added after a run was started take their defaults (what that run used).
  record = {**LATER_SETTINGS, **record}
  if record["oracle"] in human.HUMAN_ORACLES:
    record["oracle"] = "human"
  return record


def _complete_runs(previous: Mapping | None, names: list[str], seeds: list[int],
                   rounds: int) -> dict[str, list[dict]]:
  """Strategies whose every seed has all `rounds + 1` evaluations in a previous results.json."""
  done = {}
  for name in names:
    runs = [r for r in (previous or {}).get("runs", []) if r.get("strategy") == name]
    if ([r.get("seed") for r in runs] == seeds
        and (all(len(r.get("rounds", ())) == rounds + 1 for r in runs)
             or checkpointing.stopped_and_final(runs))):
      done[name] = [{k: v for k, v in r.items() if k != "strategy"} for r in runs]
  return done


def _run_strategy(model, tx, rcfg: RoundConfig, pool: loop.LabeledArrays, test: loop.LabeledArrays,
                  seeds: list[int], splits: list, cfg: Mapping[str, Any], train_index: np.ndarray,
                  workdir: str, every: int, keep: int, progress: Callable[[dict], None],
                  log: Callable[[str], None]) -> list[dict]:
  """One strategy's seeds, resumed from its newest good checkpoint and checkpointed every `every`
  evaluations (no checkpoints when `every` is 0). Returns the per-seed records of `loop.run`."""
  import functools  # pylint: disable=import-outside-toplevel
  from jaxal import checkpointing  # pylint: disable=import-outside-toplevel
  rounds = int(cfg["rounds"])
  run = functools.partial(loop.run, model, tx, rcfg, pool, test, seeds, splits, rounds,
                          train_index=train_index, on_round=progress,
                          seed_batching=cfg["seed_batching"], stop=stop_rules(cfg))
  if not every:
    return run()
  y_np = np.asarray(pool.y)
  fresh = loop.stack_states([loop.init_state(s, sp, y_np, model, tx, pool.x, rcfg.members)
                             for s, sp in zip(seeds, splits)])
  ckpt = checkpointing.StrategyCheckpoints(workdir, rcfg.strategy, rounds, every, keep, log)
  try:
    found = ckpt.restore_latest(fresh, seeds)
    if found is None:
      return run(states=fresh, on_state=ckpt.save)
    step, states, records, complete = found
    if complete:
      log(f"[{rcfg.strategy}] complete in checkpoint step {step}; nothing to run")
      return records
    log(f"[{rcfg.strategy}] resuming from checkpoint step {step} (rounds 0..{step - 1} done)")
    return run(states=states, records=records, on_state=ckpt.save)
  finally:
    ckpt.close()
