r"""Runs an active-learning experiment grid and writes a results directory.

  jaxal-run                                                  # quick default on sklearn digits
  jaxal-run --dataset=idx --data_dir=/data/fashion_mnist --model=lenet5 \
      --strategies=random,entropy --rounds=10 --workdir=runs/fmnist
  jaxal-run --list=strategies                                # or models, presets, datasets

(`python -m experiments.run` from the repository's root is the same command.)

`--preset=NAME` loads jaxal/presets/NAME.py; flags given on the command line override it.

Exit codes: 0 done; 1 an error, reported in one line (JAXAL_DEBUG=1 shows the traceback);
3 (`--oracle=human`) waiting for a person's answers; 130 interrupted (Ctrl-C). An interrupted or
failed run resumes when the same command is run again.
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys

from absl import flags

from jaxal import experiment, human
from jaxal import presets as configs
from jaxal.cli import cache, listing, start
from jaxal.errors import ArgumentError

_DEFAULT = configs.load("default")
FLAGS = flags.FLAGS

flags.DEFINE_string("preset", "default", f"Named protocol; accepted: {', '.join(configs.available())}.")
flags.DEFINE_string("dataset", _DEFAULT.dataset, "digits, idx, folder, npz, unlabeled (a person labels it: --oracle=web) or tfds:<name>.")
flags.DEFINE_string("data_dir", _DEFAULT.data_dir, "Dataset folder, zip or .npz file (idx/folder/npz); TFDS data_dir.")
flags.DEFINE_string("model", _DEFAULT.model, "Model name: mlp, lenet5, cnn3, gal_cnn, gal_cnn_code, cnn2_bn, resnet18, resnet18_imagenet.")
flags.DEFINE_string("strategies", _DEFAULT.strategies, "Comma-separated strategies, compared in one run.")
flags.DEFINE_integer("seeds", _DEFAULT.seeds, "Number of seeds (0..n-1), run side by side.")
flags.DEFINE_integer("initial_size", _DEFAULT.initial_size, "Size of the initial labeled set (balanced random, or chosen by each strategy with --initial_by=strategy).")
flags.DEFINE_string("initial_by", _DEFAULT.initial_by, "Who chooses the initial labeled set: random (balanced over classes, the same for every strategy) or strategy (each strategy picks its first --initial_size items from no labels, on the embeddings; strategies that need a trained network start from random's choice; needs --train=linear).")
flags.DEFINE_integer("query_size", _DEFAULT.query_size, "K: items labeled per round.")
flags.DEFINE_integer("rounds", _DEFAULT.rounds, "Acquisition rounds.")
flags.DEFINE_integer("epochs", _DEFAULT.epochs, "Training epochs per round.")
flags.DEFINE_integer("batch_size", _DEFAULT.batch_size, "Training batch size.")
flags.DEFINE_string("optimizer", _DEFAULT.optimizer, "sgd or adam.")
flags.DEFINE_float("learning_rate", _DEFAULT.learning_rate, "Learning rate.")
flags.DEFINE_float("momentum", _DEFAULT.momentum, "SGD momentum.")
flags.DEFINE_float("weight_decay", _DEFAULT.weight_decay, "L2 weight decay (PyTorch semantics).")
flags.DEFINE_float("l2_per_label", _DEFAULT.l2_per_label, "c: Keras-style L2 (c / labeled count) * sum(kernel^2) in the loss (Gal et al.: 3.5).")
flags.DEFINE_boolean("reinit", _DEFAULT.reinit, "Re-initialise the model every round.")
flags.DEFINE_string("uncertainty", _DEFAULT.uncertainty,
                    "How predictive samples are drawn: deterministic, mc_dropout or ensemble.")
flags.DEFINE_integer("mc_samples", _DEFAULT.mc_samples, "S: MC-dropout passes per pool item.")
flags.DEFINE_integer("ensemble_size", _DEFAULT.ensemble_size, "M: deep-ensemble members (vmap).")
flags.DEFINE_integer("test_mc_samples", _DEFAULT.test_mc_samples, "With --uncertainty=mc_dropout: also record test_accuracy_mc, the accuracy of the mean of this many MC-dropout passes (Gal et al.'s test-time dropout; 0 = off).")
flags.DEFINE_integer("pool_subset", _DEFAULT.pool_subset, "Score only this many random unlabeled items per round (0 = all).")
flags.DEFINE_string("hybrid_score", _DEFAULT.hybrid_score, "Score ranking the uncertain share of hybrid / hybrid_balanced.")
flags.DEFINE_float("alpha", _DEFAULT.alpha, "Hybrid: share of K taken by uncertainty, in (0, 1].")
flags.DEFINE_integer("n_clusters", _DEFAULT.n_clusters, "Hybrid: k-means clusters over the uncertain share.")
flags.DEFINE_float("purity", _DEFAULT.purity, "Cluster AL: the expert labels a cluster when its modal class reaches this share.")
flags.DEFINE_integer("clusters_per_round", _DEFAULT.clusters_per_round, "Cluster AL: clusters shown to the expert per round.")
flags.DEFINE_integer("cluster_size", _DEFAULT.cluster_size, "Cluster AL: average cluster size; clusters = selectable pool / this.")
flags.DEFINE_boolean("same_init", _DEFAULT.same_init, "With --reinit, reset to the same initial weights every round (cluster paper).")
flags.DEFINE_integer("val_size", _DEFAULT.val_size, "Labeled validation set size (balanced).")
flags.DEFINE_string("model_selection", _DEFAULT.model_selection, "Which epoch a round keeps: last, or best_val (highest validation accuracy, ties to the lower validation loss; needs --val_size > 0).")
flags.DEFINE_integer("val_every", _DEFAULT.val_every, "With --model_selection=best_val: evaluate on the validation set every N epochs (and after the last).")
flags.DEFINE_integer("early_stopping", _DEFAULT.early_stopping, "With --model_selection=best_val: stop training after N evaluations without improvement (0 = off).")
flags.DEFINE_string("classes", _DEFAULT.classes, "Class subset by index or name, e.g. 0,1.")
flags.DEFINE_string("class_map", _DEFAULT.class_map, "JSON file merging classes: {new: [old, ...]}.")
flags.DEFINE_float("test_fraction", _DEFAULT.test_fraction, "Test share for datasets without a test split.")
flags.DEFINE_integer("train_limit", _DEFAULT.train_limit, "Reduced scale: keep a class-stratified random sample of this many training images (fixed seed; 0 = all).")
flags.DEFINE_integer("test_limit", _DEFAULT.test_limit, "Reduced scale: keep a class-stratified random sample of this many test images (0 = all).")
flags.DEFINE_string("cache_dir", _DEFAULT.cache_dir, "Cache for decoded image folders ('' = none).")
flags.DEFINE_integer("eval_batch_size", _DEFAULT.eval_batch_size, "Chunk size for evaluation and scoring.")
flags.DEFINE_string("seed_batching", _DEFAULT.seed_batching, "How seeds share one program: vmap, map (lax.map) or auto (map on CPU, vmap on accelerators).")
flags.DEFINE_string("workdir", _DEFAULT.workdir, "Results directory (default runs/<preset>).")
flags.DEFINE_boolean("overwrite", _DEFAULT.overwrite, "Replace a run with different settings (and its checkpoints) in --workdir.")
flags.DEFINE_integer("checkpoint_every", _DEFAULT.checkpoint_every, "Checkpoint every N rounds under <workdir>/checkpoints (0 = none); re-running the command resumes.")
flags.DEFINE_string("oracle", _DEFAULT.oracle, "Who labels: simulated (the dataset's labels), web (a labeling page in the browser), human (each round writes <workdir>/round_NNN/query.png and labels.csv and stops; fill it in and run again) or terminal (asks image by image). human/terminal need --seeds=1 and one strategy.")
flags.DEFINE_string("initial_labels", _DEFAULT.initial_labels, "--dataset=unlabeled: images labeled before the run, a CSV path,label (paths as in the pool folder) or a folder of <class>/<image>.")
flags.DEFINE_integer("image_size", _DEFAULT.image_size, "--dataset=unlabeled: resize images to this square side (0 = keep a shared size up to 128, else 64).")
flags.DEFINE_float("holdout", _DEFAULT.holdout, "--dataset=unlabeled: share of each round's images whose answers are held out of training to measure accuracy (0 = none).")
flags.DEFINE_string("cold_start", _DEFAULT.cold_start, "--dataset=unlabeled: how the first images are chosen before any label exists: typiclust, kmeans or random (on the inputs' principal components).")
flags.DEFINE_string("progress", _DEFAULT.progress, "While a round runs: phases (train / evaluate / select, live; the programs carry host callbacks and are not cached), rounds (a line a round; the compiled programs are kept in --compilation_cache) or auto (on a terminal: rounds with a live line, then phases once a round takes 20 s or more; rounds otherwise).")
flags.DEFINE_string("host", _DEFAULT.host, "--oracle=web: the address the labeling page listens on (127.0.0.1 = this machine only).")
flags.DEFINE_integer("port", _DEFAULT.port, "--oracle=web: the port of the labeling page (0 = any free port).")
flags.DEFINE_string("token", _DEFAULT.token, "--oracle=web: the access token in the page's URL ('' = a new random one each start).")
flags.DEFINE_integer("batchbald_configs", _DEFAULT.batchbald_configs, "BatchBALD: label configurations M, exact while C^b <= M, else M sampled.")
flags.DEFINE_float("power_beta", _DEFAULT.power_beta, "power_bald / power_entropy: coldness beta (draw probability ~ score^beta).")
flags.DEFINE_integer("graph_subset", _DEFAULT.graph_subset, "typiclust / probcover: work on at most this many random unlabeled items (0 = all).")
flags.DEFINE_integer("typiclust_max_clusters", _DEFAULT.typiclust_max_clusters, "TypiClust: cap on the number of clusters.")
flags.DEFINE_integer("typiclust_neighbors", _DEFAULT.typiclust_neighbors, "TypiClust: neighbours for typicality.")
flags.DEFINE_float("probcover_delta", _DEFAULT.probcover_delta, "ProbCover: ball radius on L2-normalised features (0 = automatic, from --probcover_purity).")
flags.DEFINE_float("probcover_purity", _DEFAULT.probcover_purity, "ProbCover: share of pure balls for the automatic radius.")
flags.DEFINE_float("cluster_margin_factor", _DEFAULT.cluster_margin_factor, "Cluster-Margin: lowest-margin candidates clustered per round, as a multiple of K (>= 1).")
flags.DEFINE_float("cluster_margin_threshold", _DEFAULT.cluster_margin_threshold, "Cluster-Margin: average-linkage distance threshold (0 = merge down to K clusters).")
flags.DEFINE_integer("stop_labels", _DEFAULT.stop_labels, "Stop once the labeled set reaches this size (0 = off; --rounds is the hard limit).")
flags.DEFINE_integer("stop_interactions", _DEFAULT.stop_interactions, "Stop once this many human interactions are spent (0 = off).")
flags.DEFINE_float("stop_min_uncertainty", _DEFAULT.stop_min_uncertainty, "Stop when the stop set's mean normalised entropy falls below this (0 = off; needs --stop_set).")
flags.DEFINE_float("stop_agreement", _DEFAULT.stop_agreement, "Stop when this share of stop-set predictions is unchanged from the previous round for --stop_patience rounds (0 = off; needs --stop_set).")
flags.DEFINE_integer("stop_patience", _DEFAULT.stop_patience, "Rounds the agreement rule must hold.")
flags.DEFINE_integer("stop_set", _DEFAULT.stop_set, "Size of the random pool sample predicted every round for the uncertainty and agreement rules (0 = none).")
flags.DEFINE_string("noise", _DEFAULT.noise, "Input noise on a fraction of the images: none, gaussian or salt_and_pepper.")
flags.DEFINE_float("noise_fraction", _DEFAULT.noise_fraction, "Share of the images that get noise (the constrained-setting paper: 0.1).")
flags.DEFINE_float("noise_std", _DEFAULT.noise_std, "Gaussian noise: standard deviation as a fraction of the pixel range.")
flags.DEFINE_float("noise_amount", _DEFAULT.noise_amount, "Salt-and-pepper: share of a noisy image's pixels set to the minimum or maximum.")
flags.DEFINE_string("noise_splits", _DEFAULT.noise_splits, "Where noise goes: train (the pool), test, or train,test.")
flags.DEFINE_integer("noise_seed", _DEFAULT.noise_seed, "Seed of the noise (the same corrupted data for every run seed).")
flags.DEFINE_string("pretrained", _DEFAULT.pretrained, "An .npz of pretrained weights (resnet18 / resnet18_imagenet; see experiments/convert_torchvision_resnet.py).")
flags.DEFINE_string("train", _DEFAULT.train, "What is trained: full (the network on images), linear (a head, --model=linear or mlp_head, on frozen embeddings from --encoder or --features) or finetune (the network started from --encoder every round).")
flags.DEFINE_string("features", _DEFAULT.features, "A .npy of embeddings [N_train + N_test, D] (training images, then test images, in the dataset's order), for --train=linear.")
flags.DEFINE_string("encoder", _DEFAULT.encoder, "An encoder.npz written by jaxal-pretrain (with its encoder.json), for --train=linear or finetune.")
flags.DEFINE_integer("keep_checkpoints", _DEFAULT.keep_checkpoints, "Checkpoints kept per strategy (the newest N).")

flags.DEFINE_string("compilation_cache", cache.default_folder(), "Folder of the persistent XLA "
                    "compilation cache: later runs of the same programs load them instead of "
                    "compiling ('' = off; JAX_COMPILATION_CACHE_DIR wins when set).")
# Scaling out (jaxal.scale, jaxal.sharding, jaxal.host_pool): not preset settings, so a preset
# runs unchanged on one device, a mesh or a host pool.
flags.DEFINE_string("mesh", "auto", "Devices the pool is split over: auto (every device on the pool axis; one device: none), none, D, or PxS (pool x seeds).")
flags.DEFINE_string("pool_on", "auto", "Where the pool lives: device, host (a .npy streamed to the device in blocks with a running top-K; strategies that need only scores) or auto (host when the float32 pool exceeds the device budget).")
flags.DEFINE_float("device_memory_mb", 0.0, "Device budget in MB for --pool_on=auto (0 = what the device reports; on CPU a quarter of the RAM).")
flags.DEFINE_integer("host_block", 65536, "--pool_on=host: pool rows streamed to the device at a time.")
flags.DEFINE_string("coordinator_address", "", "Many hosts: host:port of process 0 (jax.distributed); every process runs the same command.")
flags.DEFINE_integer("num_processes", 1, "Many hosts: number of processes.")
flags.DEFINE_integer("process_id", 0, "Many hosts: this process's index (0 writes results).")
SCALE_SETTINGS = ("mesh", "pool_on", "device_memory_mb", "host_block")

flags.DEFINE_string("list", "", f"Print the accepted values of one of {', '.join(listing.KINDS)} "
                    "(one line each) and exit.")

SETTINGS = [k for k in _DEFAULT.keys()]


def resolve_config():
  """The preset's values, overridden by every flag given explicitly on the command line."""
  cfg = configs.load(FLAGS.preset)
  for name in SETTINGS:
    if FLAGS[name].present:
      cfg[name] = FLAGS[name].value
  if not cfg.workdir:
    cfg.workdir = f"runs/{FLAGS.preset}"
  for name in SCALE_SETTINGS:
    if FLAGS[name].present or FLAGS[name].value != FLAGS[name].default:
      cfg[name] = FLAGS[name].value
  return cfg


EXIT_WAITING = 3  # --oracle=human: stopped to wait for a person's answers
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
RESUME = "run the same command again to resume"


def _debug() -> bool:
  return os.environ.get("JAXAL_DEBUG", "") not in ("", "0")


def _os_error_line(e: OSError) -> str:
  """One line for a failed file operation: the path and what to do."""
  path = e.filename if e.filename is not None else "the workdir"
  if e.errno == errno.ENOSPC:
    return (f"error: no space left on the device while writing {path}; free some space, then "
            f"{RESUME}.")
  if e.errno == errno.EROFS:
    return f"error: cannot write {path}: read-only file system; choose a writable --workdir."
  if e.errno in (errno.EACCES, errno.EPERM):
    return (f"error: cannot write {path}: permission denied; make it writable or choose another "
            "--workdir.")
  if e.errno in (errno.EEXIST, errno.ENOTDIR):
    return (f"error: cannot create {path}: a file is in the way (--workdir must be a folder); "
            "move it or choose another --workdir.")
  return f"error: {path}: {e.strerror or e}."


def _model_error(e: BaseException) -> bool:
  """Whether `e` was raised by a model's own code (e.g. while JAX traces it on the images)."""
  where = os.sep + os.path.join("jaxal", "models") + os.sep
  tb = e.__traceback__
  while tb is not None:
    if where in tb.tb_frame.f_code.co_filename:
      return True
    tb = tb.tb_next
  return False


def _fault(e: BaseException) -> tuple[str, int] | None:
  """(line, exit code) for a fault a user meets, or None for a bug (shown with its traceback)."""
  if isinstance(e, KeyboardInterrupt):
    with contextlib.suppress(ValueError):  # outside the main thread
      signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback while leaving
    return f"interrupted; {RESUME}.", EXIT_INTERRUPTED
  if isinstance(e, OSError):
    return _os_error_line(e), 1
  if isinstance(e, ValueError) and _model_error(e):
    return f"error: --model={FLAGS.model}: {e}", 1
  return None


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}; settings are given as --flag=value.")
  if FLAGS.list:
    if FLAGS.list not in listing.KINDS:
      sys.exit(f"error: --list: unknown value {FLAGS.list!r}; accepted: "
               f"{', '.join(listing.KINDS)}.")
    print(listing.text((FLAGS.list,)))
    return
  cache.use_compilation_cache(FLAGS.compilation_cache)
  try:
    cfg = resolve_config()
    if FLAGS.coordinator_address or FLAGS.num_processes > 1:   # many hosts (jaxal.sharding.join)
      from jaxal import sharding  # pylint: disable=import-outside-toplevel
      try:
        sharding.join(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
      except ArgumentError as e:
        sys.exit(f"error: {e.render({k: '--' + k for k in ('coordinator_address', 'num_processes', 'process_id')})}")
      os.environ["JAXAL_CHECKPOINT_ROOT"] = os.path.join(os.path.abspath(cfg.workdir),
                                                         "checkpoints")   # shared by all
      if FLAGS.process_id:   # process 0 writes the results; the others keep their own records
        cfg.workdir = os.path.join(cfg.workdir, f"process_{FLAGS.process_id}")
    results = experiment.run_experiment(cfg.to_dict(), cfg.workdir)
  except (experiment.ConfigError, human.LabelFileError) as e:
    sys.exit(f"error: {e}")
  except ArgumentError as e:
    sys.exit(f"error: {experiment.flag_error(e)}")
  except (OSError, ValueError, KeyboardInterrupt) as e:
    fault = None if _debug() else _fault(e)
    if fault is None:
      raise
    print(fault[0], file=sys.stderr)
    sys.exit(fault[1])
  if results.get("paused"):
    sys.exit(EXIT_WAITING)  # waiting for a person's answers; the message is printed
  print(f"results written to {cfg.workdir}/ (config.json, results.json, curves.png, summary.md)")


def cli(argv=None, main_fn=None, module: str = __name__):
  """The `jaxal-run` console script: `--help` (or -h) prints the flags and what each list
  accepts, and exits 0. (`jaxal-label` runs it with its own `main_fn` and docstring `module`.)"""
  try:
    start(main_fn or main, module, argv, extra=listing.text())
  except KeyboardInterrupt:  # before or after `main` (flag parsing, imports, shutdown)
    if _debug():
      raise
    print(f"interrupted; {RESUME}.", file=sys.stderr)
  except SystemExit as e:
    if e.code != EXIT_INTERRUPTED:
      raise
  else:
    return
  if argv is None:
    # The command line (not a caller in this process): leave without the interpreter's teardown,
    # which can crash in XLA's threads after an interrupt. Checkpoints and results are written
    # synchronously and atomically, so nothing is lost.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)
  with contextlib.suppress(ValueError):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a caller in this process: restore
  sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
  cli()
