r"""Runs an active-learning experiment grid and writes a results directory.

  python -m experiments.run                                  # quick default on sklearn digits
  python -m experiments.run --dataset=idx --data_dir=/data/fashion_mnist --model=lenet5 \
      --strategies=random,entropy --rounds=10 --workdir=runs/fmnist

`--preset=NAME` loads experiments/configs/NAME.py; flags given on the command line override it.
"""
from __future__ import annotations

import sys

from absl import app, flags

from experiments import configs
from jaxal import experiment, human

_DEFAULT = configs.load("default")
FLAGS = flags.FLAGS

flags.DEFINE_string("preset", "default", f"Named protocol; accepted: {', '.join(configs.available())}.")
flags.DEFINE_string("dataset", _DEFAULT.dataset, "digits, idx, folder, npz or tfds:<name>.")
flags.DEFINE_string("data_dir", _DEFAULT.data_dir, "Dataset folder, zip or .npz file (idx/folder/npz); TFDS data_dir.")
flags.DEFINE_string("model", _DEFAULT.model, "Model name: mlp, lenet5, cnn3, gal_cnn, gal_cnn_code, cnn2_bn, resnet18, resnet18_imagenet.")
flags.DEFINE_string("strategies", _DEFAULT.strategies, "Comma-separated strategies, compared in one run.")
flags.DEFINE_integer("seeds", _DEFAULT.seeds, "Number of seeds (0..n-1), run side by side.")
flags.DEFINE_integer("initial_size", _DEFAULT.initial_size, "Balanced random initial labeled set.")
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
flags.DEFINE_string("oracle", _DEFAULT.oracle, "Who labels: simulated (the dataset's labels), human (each round writes <workdir>/round_NNN/query.png and labels.csv and stops; fill it in and run again) or terminal (asks image by image). human/terminal need --seeds=1 and one strategy.")
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
flags.DEFINE_integer("keep_checkpoints", _DEFAULT.keep_checkpoints, "Checkpoints kept per strategy (the newest N).")

SETTINGS = [k for k in _DEFAULT.keys()]


def resolve_config():
  """The preset's values, overridden by every flag given explicitly on the command line."""
  cfg = configs.load(FLAGS.preset)
  for name in SETTINGS:
    if FLAGS[name].present:
      cfg[name] = FLAGS[name].value
  if not cfg.workdir:
    cfg.workdir = f"runs/{FLAGS.preset}"
  return cfg


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}; settings are given as --flag=value.")
  try:
    cfg = resolve_config()
    results = experiment.run_experiment(cfg.to_dict(), cfg.workdir)
  except (experiment.ConfigError, human.LabelFileError) as e:
    sys.exit(f"error: {e}")
  except ValueError as e:
    if str(e).startswith("--"):
      sys.exit(f"error: {e}")
    raise
  if results.get("paused"):
    return  # waiting for a person's answers; the message is printed
  print(f"results written to {cfg.workdir}/ (config.json, results.json, curves.png, summary.md)")


if __name__ == "__main__":
  app.run(main)
