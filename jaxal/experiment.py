"""An experiment grid (strategies x seeds on one dataset and model) from a flat configuration to a
results directory: `config.json`, `results.json`, `curves.png`, `summary.md`.

This is the library side of `python -m experiments.run`; notebooks can call `run_experiment` with a
`ConfigDict` (or any mapping with the same keys) directly. The settings are checked by
`jaxal.settings`, the workdir is managed by `jaxal.workdir`, and each strategy runs through
`jaxal.driver.run` (or `jaxal.human.run_human` with a person as the oracle).
"""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Callable, Mapping, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import (checkpointing, driver, features, human, initial, models, registry, reporting,
                   scale, scoring, training)
from jaxal.lock import holding_workdir_lock
from jaxal.data import DatasetError, channel_stats, make_splits, normalize
from jaxal.data.splits import known_splits
from jaxal.errors import ArgumentError
from jaxal import progress as progress_lib
from jaxal.round import make_round
from jaxal.settings import (ConfigError, check_budget, flag_error, parse_list, prepare_dataset,
                            stop_rules, train_config, validate)
from jaxal.state import Budget, LabeledArrays, Uncertainty
from jaxal.workdir import _checkpoint_settings, _complete_runs, _prepare_workdir, seed_groups

__all__ = ["ConfigError", "run_experiment", "write_results", "validate"]


@holding_workdir_lock  # one run per workdir at a time (jaxal.lock)
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
  if ds.unlabeled:   # the images labeled before the run are the initial set
    cfg["initial_size"] = int(np.sum(ds.y_train >= 0))
    log(f"{ds.name}: {len(ds.y_train)} images, {cfg['initial_size']} labeled before the run; "
        f"classes {', '.join(ds.class_names)}")
  check_budget(cfg, len(ds.y_train))
  seeds = list(range(int(cfg["seeds"])))
  # --initial_by=strategy: each strategy picks its own first labels (jaxal.initial), below.
  by_strategy = cfg.get("initial_by", "random") == "strategy"
  try:
    splits = [known_splits(ds.y_train) if ds.unlabeled else
              make_splits(ds.y_train, ds.num_classes, 0 if by_strategy else cfg["initial_size"],
                          cfg["val_size"], s)
              for s in seeds]
  except DatasetError as e:
    raise ConfigError(f"--{e}") from e
  layout = scale.choose(cfg, ds, len(seeds), workdir, log)   # one device, a mesh, or the host
  mean, std = layout.channel_stats(ds)
  if layout.default:
    pool = LabeledArrays(jnp.asarray(normalize(ds.x_train, mean, std)),
                         jnp.asarray(ds.y_train, jnp.int32))
    test = LabeledArrays(jnp.asarray(normalize(ds.x_test, mean, std)),
                         jnp.asarray(ds.y_test, jnp.int32))
    pool, test = features.frozen_inputs(cfg, ds, pool, test)   # --train=linear: embeddings
  elif cfg.get("train", "full") != "full" or ds.unlabeled:
    raise ConfigError(f"--train={cfg.get('train')} and --dataset=unlabeled run on one device: set "
                      "--mesh=none --pool_on=device.")
  else:
    pool, test = layout.arrays(ds, mean, std)
  if ds.unlabeled:
    test = None   # a pool without labels has no test set
  extra = {"pretrained": cfg["pretrained"]} if cfg["pretrained"] else {}
  extra.update(features.model_kwargs(cfg))   # --train=finetune: the encoder's weights
  try:
    model = models.get_model(cfg["model"], ds.num_classes, **extra)
  except TypeError as e:
    raise ConfigError(f"--pretrained: model {cfg['model']!r} cannot load pretrained weights "
                      "(resnet18 and resnet18_imagenet can).") from e
  try:
    scoring.check_method(model, cfg["uncertainty"])
  except ArgumentError as e:
    raise flag_error(e) from e
  tc = train_config(cfg)
  tx = training.make_optimizer(tc)
  budget = Budget(initial_size=int(cfg["initial_size"]), query_size=int(cfg["query_size"]),
                  rounds=int(cfg["rounds"]))
  uncertainty = Uncertainty(method=cfg["uncertainty"], mc_samples=int(cfg["mc_samples"]),
                            ensemble_size=int(cfg["ensemble_size"]),
                            test_mc_samples=int(cfg["test_mc_samples"]))
  config_record = {**cfg, "workdir": workdir, "num_classes": ds.num_classes,
                   "class_names": list(ds.class_names), "train_size": int(len(ds.y_train)),
                   "test_size": int(len(ds.y_test)), "image_shape": list(ds.image_shape),
                   "channel_mean": [float(v) for v in mean], "channel_std": [float(v) for v in std],
                   "jax_version": jax.__version__, "backend": jax.default_backend(),
                   "dropout_masks": models.DROPOUT_MASKS}
  names = parse_list(cfg["strategies"])
  groups = seed_groups(workdir, len(seeds), overwrite)
  config_record["seed_groups"] = groups
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
  reporter = progress_lib.Reporter.for_terminal(stdout)   # the live line while a round runs
  for name in names:
    try:
      round_fn = make_round(model, tx, registry.strategy(name, cfg), budget=budget, train=tc,
                            uncertainty=uncertainty, num_classes=ds.num_classes,
                            pool_subset=int(cfg["pool_subset"]), stop_set=int(cfg["stop_set"]))
      run_splits = splits
      if by_strategy:
        run_splits = initial.strategy_splits(round_fn, pool, seeds, splits,
                                             int(cfg["initial_size"]))
        log(f"[{name}] first {cfg['initial_size']} labels chosen by "
            f"{name if initial.chooses_itself(round_fn.strategy) else 'random'} "
            "(--initial_by=strategy)")
      driver.check_run(round_fn, pool, test, seeds, run_splits,
                       person=cfg.get("oracle", "simulated") != "simulated")
      layout.check(round_fn)
    except ArgumentError as e:
      raise flag_error(e) from e
    started = time.perf_counter()

    def progress(p, name=name):
      note = " (includes compilation)" if p.get("compiled", p["first"]) else ""
      loss = f"  loss {p['train_loss']:.3g}" if p.get("train_loss") is not None else ""
      eta = reporter.eta_text()
      log(f"[{name}] round {p['round']:>3}/{cfg['rounds']}  labels {p['labels']:>5}  "
          f"test acc {p['test_accuracy']:.4f} (mean of {len(seeds)}){loss}  "
          f"{p['seconds']:.2f}s{note}" + (f"  {eta}" if eta else ""))
      if p.get("warning"):
        log(f"[{name}] warning: {p['warning']} (--learning_rate={cfg['learning_rate']:g})")

    progress.reporter = reporter   # driver.run shows the phases of each round through it
    reporter.strategies_after = sum(n not in done for n in names[names.index(name) + 1:])

    if name in done:
      log(f"[{name}] already complete; kept from the previous run")
      records = done[name]
    elif cfg.get("oracle", "simulated") in human.PERSON_ORACLES:
      person = dict(round_fn=round_fn, pool=pool, test=test, seed=seeds[0], split=splits[0],
                    images=ds.x_train, class_names=ds.class_names, train_index=ds.train_index,
                    workdir=workdir, keep=keep, seed_batching=cfg["seed_batching"], log=log,
                    holdout=float(cfg.get("holdout", 0.0)) if ds.unlabeled else 0.0,
                    cold_start=cfg.get("cold_start", "typiclust"))
      if cfg["oracle"] == "web":
        from jaxal.human.web import serve  # pylint: disable=import-outside-toplevel
        records, paused = serve(person, ds, cfg, results, write_results)
      else:
        records, paused = human.run_human(**person, mode=cfg["oracle"], stdin=stdin,
                                          stdout=stdout)
      if paused:
        results["runs"] += [{"strategy": name, **rec} for rec in records]
        if any(rec["rounds"] for rec in records):
          write_results(results, workdir)
        log(paused)
        results["paused"] = paused
        return results
    else:
      records = []
      for g, group in enumerate(groups):   # seeds added to a run later have their own checkpoints
        records += _run_strategy(round_fn, pool, test, group, [run_splits[s] for s in group], cfg,
                                 ds.train_index, workdir, every, keep, progress, log,
                                 name if g == 0 else f"{name}@seeds{group[0]}-{group[-1]}",
                                 layout=layout)
    for rec in records:
      results["runs"].append({"strategy": name, **rec})
    log(f"[{name}] done in {time.perf_counter() - started:.1f}s")
    write_results(results, workdir)
  return results


def write_results(results: Mapping, workdir: str) -> None:
  """results.json, curves.png and summary.md, each written atomically."""
  reporting.write_json_atomic(os.path.join(workdir, "results.json"), results)
  cfg = results["config"]
  if not any("test_accuracy" in row for run in results["runs"] for row in run["rounds"]):
    # A pool without labels: no test set; the held-out share of the person's answers instead.
    reporting.write_atomic(os.path.join(workdir, "summary.md"), _person_summary(results))
    return
  title = f"{cfg.get('dataset')} / {cfg.get('model')}, {cfg.get('seeds')} seeds"
  if cfg.get("train_limit") or cfg.get("test_limit"):
    title += (f" (reduced: train {cfg.get('train_limit') or 'all'}, "
              f"test {cfg.get('test_limit') or 'all'})")
  reporting.plot_curves(results["runs"], os.path.join(workdir, "curves.png"), title=title)
  reporting.plot_curves(results["runs"], os.path.join(workdir, "curves_interactions.png"),
                        x_key="interactions", title=title)
  reporting.write_atomic(os.path.join(workdir, "summary.md"), reporting.summary_markdown(results))



PHASES_AFTER_S = 20.0   # "auto" on a terminal: the phase reports once a round takes this long


def _phases(cfg: Mapping[str, Any]) -> bool | float:
  """`--progress`: phases inside each round (host callbacks in the programs, which JAX does not
  cache), or rounds only (cacheable programs); "auto": on a terminal, rounds (a live line counting
  the round's seconds and the ETA) until a round takes `PHASES_AFTER_S`, then phases; else rounds."""
  import sys  # pylint: disable=import-outside-toplevel
  mode = cfg.get("progress", "auto")
  if mode == "auto":
    return PHASES_AFTER_S if sys.stdout.isatty() else False
  return mode == "phases"


def _person_summary(results: Mapping) -> str:
  """summary.md of a run on a pool without labels: one line per round."""
  lines = [f"# {results['config'].get('dataset')}: labeled by a person", "",
           "Accuracy is measured on the held-out share of the person's own answers (not trained "
           "on); there is no test set.", "",
           "| strategy | round | labels | interactions | held-out accuracy | held-out labels |",
           "|---|---|---|---|---|---|"]
  for run in results["runs"]:
    for row in run["rounds"]:
      acc = row.get("heldout_accuracy")
      lines.append(f"| {run['strategy']} | {row['round']} | {row['labels']} | "
                   f"{row['interactions']} | {'-' if acc is None else f'{acc:.3f}'} | "
                   f"{row.get('heldout_size', 0)} |")
  return "\n".join(lines) + "\n"


def _run_strategy(round_fn, pool: LabeledArrays, test: LabeledArrays, seeds: list[int],
                  splits: list, cfg: Mapping[str, Any], train_index: np.ndarray, workdir: str,
                  every: int, keep: int, progress: Callable[[dict], None],
                  log: Callable[[str], None], checkpoint_name: str | None = None,
                  layout: scale.Layout | None = None) -> list[dict]:
  """One strategy's seeds, resumed from its newest good checkpoint and checkpointed every `every`
  evaluations (no checkpoints when `every` is 0). Returns the per-seed records of `driver.run`."""
  run = functools.partial(driver.run, round_fn, pool, test, seeds, splits,
                          train_index=train_index, on_round=progress,
                          progress=getattr(progress, "reporter", None),
                          phases=_phases(cfg),
                          seed_batching=cfg["seed_batching"], stop=stop_rules(cfg))
  init_pool = pool if layout is None or layout.init_pool is None else layout.init_pool
  fresh = round_fn.init_states(seeds, splits, init_pool)
  if layout is not None and not layout.default:   # the sharded or streamed round (jaxal.scale)
    fns = layout.round_fns(round_fn, fresh, getattr(progress, "reporter", None) is not None)
    run = functools.partial(run, fns=fns)
  if not every:
    return run(states=fresh)
  name = checkpoint_name or round_fn.name
  ckpt = checkpointing.StrategyCheckpoints(workdir, name, round_fn.budget.rounds, every, keep, log)
  try:
    found = ckpt.restore_latest(fresh, seeds)
    if found is None:
      return run(states=fresh, on_state=ckpt.save)
    step, states, records, complete = found
    if complete:
      log(f"[{name}] complete in checkpoint step {step}; nothing to run")
      return records
    log(f"[{name}] resuming from checkpoint step {step} (rounds 0..{step - 1} done)")
    return run(states=states, records=records, on_state=ckpt.save)
  finally:
    ckpt.close()
