"""The flat configuration of the command line and presets (one key per flag), checked and turned
into the library's values: `validate` (one line naming the flag for every bad setting, before any
data is loaded), `prepare_dataset`, `check_budget`, `train_config`, `stop_rules`, and `flag_error`,
which renders the library's `ArgumentError`s in the flags' words through one table.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

from jaxal import features, human, initial, models, registry, stopping
from jaxal.data import (Dataset, DatasetError, load_class_map, load_dataset, merge_classes,
                        noise_dataset, subsample, subset_classes)
from jaxal.errors import ArgumentError
from jaxal.round import SEED_BATCHING
from jaxal.state import METHODS, MODEL_SELECTIONS, OPTIMIZERS, TrainConfig


class ConfigError(ValueError):
  """A setting that cannot be used; the message names the flag and what it accepts."""


DATASET_KINDS = ("digits", "idx", "folder", "npz", "npy", "unlabeled", "tfds:<name>")
NOISE_KINDS = ("none", "gaussian", "salt_and_pepper")


# The library's parameter names -> this command line's flags (messages of `ArgumentError`s).
FLAG_NAMES = {
    **{f"budget.{k}": f"--{k}" for k in ("initial_size", "query_size", "rounds")},
    **{f"train.{k}": f"--{k}" for k in (
        "epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay",
        "l2_per_label", "eval_batch_size", "model_selection", "val_every", "early_stopping")},
    "uncertainty.method": "--uncertainty", "uncertainty.mc_samples": "--mc_samples",
    "uncertainty.ensemble_size": "--ensemble_size",
    "uncertainty.test_mc_samples": "--test_mc_samples", "query_size": "--query_size",
    "pool_subset": "--pool_subset", "stop_set": "--stop_set", "seed_batching": "--seed_batching",
    "strategies": "--strategies",
    "model": "--model", "preset": "--preset", "train_size": "--train_limit",
    "test_size": "--test_limit", "classes": "--classes", "initial_labels": "--initial_labels",
    "image_size": "--image_size", "cold_start": "--cold_start", "holdout": "--holdout",
    **{f"stop.{k}": f"--stop_{v}" for k, v in (
        ("max_labels", "labels"), ("max_interactions", "interactions"),
        ("min_uncertainty", "min_uncertainty"), ("agreement", "agreement"),
        ("patience", "patience"))},
    **{param: f"--{flag}" for param, flag in registry.PARAMETER_SETTINGS.items()},
    **{k: f"--{k}" for k in ("train", "features", "encoder", "classes", "class_map", "test_limit",
                             "noise")},
}


def flag_error(e: ArgumentError) -> "ConfigError":
  """The library's ArgumentError in the command line's words."""
  return ConfigError(e.render(FLAG_NAMES))


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
  except ArgumentError as e:
    raise flag_error(e) from e


def parse_list(text: str) -> list[str]:
  return [t.strip() for t in str(text).split(",") if t.strip()]


def validate(cfg: Mapping[str, Any]) -> None:
  """Checks every setting that can be checked before loading data; raises ConfigError."""
  ds = str(cfg["dataset"])
  if ds not in DATASET_KINDS[:-1] and not (ds.startswith("tfds:") and len(ds) > 5):
    raise ConfigError(f"--dataset: unknown dataset {ds!r}; accepted: {', '.join(DATASET_KINDS)}.")
  if ds in ("idx", "folder", "npz", "npy", "unlabeled") and not cfg["data_dir"]:
    raise ConfigError(f"--data_dir is required with --dataset={ds}.")
  _validate_unlabeled(cfg)
  if cfg["model"] not in models.MODELS:
    raise ConfigError(f"--model: unknown model {cfg['model']!r}; accepted: "
                      f"{', '.join(models.MODELS)}.")
  names = parse_list(cfg["strategies"])
  if not names:
    raise ConfigError(f"--strategies is empty; accepted: {', '.join(registry.names())}.")
  if len(set(names)) != len(names):
    raise ConfigError(f"--strategies names a strategy twice: {cfg['strategies']!r}.")
  if cfg["uncertainty"] not in METHODS:
    raise ConfigError(f"--uncertainty: unknown method {cfg['uncertainty']!r}; accepted: "
                      f"{', '.join(METHODS)}.")
  needs = []
  for name in names:
    try:
      value = registry.strategy(name, cfg)
    except ArgumentError as e:
      raise flag_error(e) from e
    if cfg["uncertainty"] == "deterministic" and value.several_samples:
      needs.append(name)
    if name in ("hybrid", "hybrid_balanced"):
      n_top = math.ceil(cfg["alpha"] * cfg["query_size"] - 1e-9)
      if cfg["alpha"] < 1 and not 1 <= cfg["n_clusters"] <= n_top:
        raise ConfigError(f"--n_clusters={cfg['n_clusters']} must be between 1 and the uncertain "
                          f"share ceil(--alpha * --query_size) = {n_top}.")
  if needs:
    raise ConfigError(f"--strategies={','.join(needs)} needs several predictive samples; set "
                      "--uncertainty=mc_dropout or --uncertainty=ensemble.")
  if cfg["seed_batching"] not in SEED_BATCHING:
    raise ConfigError(f"--seed_batching: unknown value {cfg['seed_batching']!r}; accepted: "
                      f"{', '.join(SEED_BATCHING)}.")
  if cfg["optimizer"] not in OPTIMIZERS:
    raise ConfigError(f"--optimizer: unknown optimizer {cfg['optimizer']!r}; accepted: "
                      f"{', '.join(OPTIMIZERS)}.")
  for flag, low in (("seeds", 1), ("initial_size", 0 if ds == "unlabeled" else 1), ("query_size", 1), ("rounds", 0),
                    ("epochs", 1), ("batch_size", 1), ("val_size", 0), ("eval_batch_size", 1),
                    ("mc_samples", 1), ("ensemble_size", 1), ("pool_subset", 0),
                    ("train_limit", 0), ("test_limit", 0), ("test_mc_samples", 0)):
    if int(cfg[flag]) != cfg[flag] or cfg[flag] < low:
      raise ConfigError(f"--{flag} must be an integer >= {low}, got {cfg[flag]!r}.")
  if cfg["test_mc_samples"] and cfg["uncertainty"] != "mc_dropout":
    raise ConfigError(f"--test_mc_samples={cfg['test_mc_samples']} averages MC-dropout passes at "
                      f"test time and needs --uncertainty=mc_dropout (got "
                      f"{cfg['uncertainty']!r}); set --test_mc_samples=0 otherwise.")
  if cfg["model_selection"] not in MODEL_SELECTIONS:
    raise ConfigError(f"--model_selection: unknown value {cfg['model_selection']!r}; accepted: "
                      f"{', '.join(MODEL_SELECTIONS)}.")
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
  if cfg.get("progress", "auto") not in ("auto", "phases", "rounds"):
    raise ConfigError(f"--progress: unknown value {cfg['progress']!r}; accepted: auto, phases, "
                      "rounds.")
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
  try:
    features.validate(cfg)   # --train, --features, --encoder
  except ArgumentError as e:
    raise flag_error(e) from e
  _validate_initial_by(cfg)
  rules = stop_rules(cfg)
  if rules.needs_stop_set and cfg["stop_set"] < 1:
    raise ConfigError("--stop_min_uncertainty / --stop_agreement need a stop set: set --stop_set "
                      "to a positive size (e.g. 1000).")
  if int(cfg["stop_set"]) != cfg["stop_set"] or cfg["stop_set"] < 0:
    raise ConfigError(f"--stop_set must be an integer >= 0, got {cfg['stop_set']!r}.")
  if rules.active and cfg["oracle"] != "simulated":
    raise ConfigError(f"--stop_* rules apply to simulated runs; with --oracle={cfg['oracle']} "
                      "the person decides when to stop.")
  clustered = any(registry.parse(n)[0] == "cluster" for n in names)
  for name in registry.STRATEGIES:   # every factory checks its own settings, used or not
    if name != "cluster" or clustered:
      try:
        registry.strategy(name, cfg)
      except ArgumentError as e:
        raise flag_error(e) from e


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
  strategy = registry.parse(names[0])
  if strategy[1] is not None and not strategy[2]:
    raise ConfigError(f"--oracle={oracle} with --strategies={names[0]}: the images of "
                      "cluster+<score> are chosen after the clusters are answered, which a person "
                      "cannot do in one question yet; use cluster or <score>+cluster.")
  if cfg.get("checkpoint_every", 1) != 1:
    raise ConfigError(f"--oracle={oracle} saves after every round: --checkpoint_every must be 1, "
                      f"got {cfg.get('checkpoint_every')!r}.")


def _validate_initial_by(cfg: Mapping[str, Any]) -> None:
  """--initial_by (jaxal.initial): who chooses the first labels of a simulated run."""
  by = cfg.get("initial_by", "random")
  if by not in initial.INITIAL_BY:
    raise ConfigError(f"--initial_by: unknown value {by!r}; accepted: "
                      f"{', '.join(initial.INITIAL_BY)}.")
  if by != "strategy":
    return
  if cfg["dataset"] == "unlabeled" or cfg.get("oracle", "simulated") != "simulated":
    raise ConfigError("--initial_by=strategy applies to runs with --oracle=simulated (a person's "
                      "run chooses its first images with --cold_start).")
  if cfg.get("train", "full") != "linear":
    raise ConfigError("--initial_by=strategy chooses the first labels from the embeddings before "
                      f"anything is trained: it needs --train=linear (got {cfg.get('train')!r}), "
                      "with --encoder or --features.")


def _validate_unlabeled(cfg: Mapping[str, Any]) -> None:
  """The settings of a pool without labels and of the labeling page."""
  from jaxal.human import coldstart  # pylint: disable=import-outside-toplevel
  if cfg.get("cold_start", "typiclust") not in coldstart.COLD_STARTS:
    raise ConfigError(f"--cold_start: unknown value {cfg['cold_start']!r}; accepted: "
                      f"{', '.join(coldstart.COLD_STARTS)}.")
  if not 0 <= cfg.get("holdout", 0.0) < 1:
    raise ConfigError(f"--holdout must be in [0, 1), got {cfg['holdout']}.")
  if int(cfg.get("image_size", 0)) != cfg.get("image_size", 0) or cfg.get("image_size", 0) < 0:
    raise ConfigError(f"--image_size must be an integer >= 0 (0 = automatic), got "
                      f"{cfg['image_size']!r}.")
  if not (int(cfg.get("port", 0)) == cfg.get("port", 0) and 0 <= cfg.get("port", 0) <= 65535):
    raise ConfigError(f"--port must be an integer in 0..65535 (0 = any free port), got "
                      f"{cfg['port']!r}.")
  if cfg["dataset"] != "unlabeled":
    if cfg.get("initial_labels"):
      raise ConfigError("--initial_labels applies to --dataset=unlabeled (the other datasets "
                        "carry their labels).")
    return
  if cfg.get("oracle", "simulated") == "simulated":
    raise ConfigError("--dataset=unlabeled has no labels to simulate an oracle with; set "
                      "--oracle=web (the labeling page), human (CSV files) or terminal.")
  if cfg["val_size"]:
    raise ConfigError(f"--val_size={cfg['val_size']}: an unlabeled pool has no validation labels; "
                      "set --val_size=0 (a --holdout share of your answers measures accuracy).")
  if cfg["class_map"] or cfg["train_limit"] or cfg["test_limit"] or cfg["noise"] != "none":
    raise ConfigError("--dataset=unlabeled: --class_map, --train_limit, --test_limit and --noise "
                      "apply to labeled datasets; leave them unset.")
  if cfg["model_selection"] != "last":
    raise ConfigError("--model_selection=best_val needs a validation set; an unlabeled pool has "
                      "none (use --model_selection=last).")


def _as_class(token: str):
  return int(token) if token.lstrip("-").isdigit() else token


def prepare_dataset(cfg: Mapping[str, Any]) -> Dataset:
  """Loads the dataset and applies the class subset or merge; errors name the flag at fault."""
  if cfg["dataset"] == "unlabeled":
    from jaxal.data.sources import load_unlabeled  # pylint: disable=import-outside-toplevel
    try:
      return load_unlabeled(cfg["data_dir"], tuple(parse_list(cfg["classes"])) or None,
                            cfg.get("initial_labels") or None, int(cfg.get("image_size", 0)))
    except ArgumentError as e:
      raise flag_error(e) from e
  ds = load_dataset(cfg["dataset"], cfg["data_dir"] or None, test_fraction=cfg["test_fraction"],
                    cache_dir=cfg["cache_dir"] or None)
  if cfg["classes"]:
    try:
      ds = subset_classes(ds, [_as_class(t) for t in parse_list(cfg["classes"])])
    except DatasetError as e:
      raise ConfigError(f"--classes: {e}") from e
    if ds.num_classes < 2:
      raise ConfigError(f"--classes={cfg['classes']}: active learning needs at least two classes, "
                        f"got {ds.num_classes} ({', '.join(map(str, ds.class_names))}); name two "
                        "or more.")
  if cfg["class_map"]:
    try:
      ds = merge_classes(ds, load_class_map(cfg["class_map"]), drop_unmapped=True)
    except DatasetError as e:
      raise ConfigError(f"--class_map: {e}") from e
    if ds.num_classes < 2:
      raise ConfigError(f"--class_map={cfg['class_map']}: active learning needs at least two "
                        f"classes, got {ds.num_classes}; map to two or more.")
  if cfg["train_limit"] or cfg["test_limit"]:
    try:
      ds = subsample(ds, int(cfg["train_limit"]), int(cfg["test_limit"]))
    except DatasetError as e:
      raise flag_error(e) from e
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
