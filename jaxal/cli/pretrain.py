r"""Self-supervised pretraining on a dataset's training images (labels unused): SimCLR.

  jaxal-pretrain                                              # smoke run on sklearn digits
  jaxal-pretrain --preset=simclr_fmnist --data_dir=/data/fashion_mnist --workdir=runs/ssl_fmnist

(`python -m experiments.pretrain` from the repository's root is the same command.)

Writes into --workdir: encoder.npz (weights for `jaxal-run --encoder=...`), encoder.json,
embeddings.npy (train then test features, for `--features=...`) and pretrain.json (loss curve,
throughput, linear probe on all labels). Re-running the same command resumes from the newest
checkpoint. Exit codes: 0 done; 1 an error, in one line; 130 interrupted.
"""
from __future__ import annotations

import sys

from absl import flags

from jaxal.cli import start
from jaxal.data import DatasetError
from jaxal.errors import ArgumentError
from jaxal.pretrain import configs

_D = configs.default()
FLAGS = flags.FLAGS

flags.DEFINE_string("preset", "default", f"Pretraining preset; accepted: {', '.join(configs.PRESETS)}.")
flags.DEFINE_string("method", _D.method, "Self-supervised method: simclr.")
flags.DEFINE_string("dataset", _D.dataset, "digits, idx, folder, npz or tfds:<name>.")
flags.DEFINE_string("data_dir", _D.data_dir, "Dataset folder, zip or .npz file.")
flags.DEFINE_string("cache_dir", _D.cache_dir, "Cache for decoded image folders ('' = none).")
flags.DEFINE_string("model", _D.model, "The jaxal model whose trunk is the encoder.")
flags.DEFINE_integer("train_limit", _D.train_limit, "Pretrain on a class-stratified sample of this many training images (0 = all).")
flags.DEFINE_integer("steps", _D.steps, "Optimizer steps.")
flags.DEFINE_integer("batch_size", _D.batch_size, "Images per step (two views each).")
flags.DEFINE_float("learning_rate", _D.learning_rate, "AdamW learning rate.")
flags.DEFINE_float("weight_decay", _D.weight_decay, "AdamW weight decay.")
flags.DEFINE_float("temperature", _D.temperature, "NT-Xent temperature.")
flags.DEFINE_integer("projection_dim", _D.projection_dim, "Output size of the projection head.")
flags.DEFINE_integer("hidden", _D.hidden, "Hidden width of the projection head.")
flags.DEFINE_float("crop_min_scale", _D.crop_min_scale, "Random resized crop: smallest area share, in (0, 1].")
flags.DEFINE_boolean("flip", _D.flip, "Random horizontal flips.")
flags.DEFINE_float("jitter", _D.jitter, "Colour-jitter strength in [0, 1) (colour images).")
flags.DEFINE_float("noise_std", _D.noise_std, "Additive Gaussian noise on the [0, 1] scale.")
flags.DEFINE_integer("seed", _D.seed, "Seed.")
flags.DEFINE_integer("log_every", _D.log_every, "Steps per compiled chunk and log line.")
flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every, "Checkpoint every N steps (0 = none).")
flags.DEFINE_integer("probe_steps", _D.probe_steps, "Full-batch steps of the final linear probe (0 = none).")
flags.DEFINE_string("workdir", _D.workdir, "Output directory (default runs/pretrain_<preset>).")
flags.DEFINE_boolean("overwrite", _D.overwrite, "Replace a run with other settings in --workdir.")


def resolve_config():
  cfg = configs.load(FLAGS.preset)
  for name in cfg.keys():
    if FLAGS[name].present:
      cfg[name] = FLAGS[name].value
  if not cfg.workdir:
    cfg.workdir = f"runs/pretrain_{FLAGS.preset}"
  return cfg


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments {argv[1:]}; settings are given as --flag=value.")
  from jaxal.pretrain import run  # pylint: disable=import-outside-toplevel
  try:
    cfg = resolve_config()
    run.pretrain(cfg.to_dict(), cfg.workdir)
  except DatasetError as e:
    sys.exit(f"error: --dataset={FLAGS.dataset} --data_dir={FLAGS.data_dir!r}: "
             f"{e.render({k: f'--{k}' for k in FLAGS})}")
  except ArgumentError as e:
    sys.exit(f"error: {e.render({k: f'--{k}' for k in FLAGS})}")
  except KeyboardInterrupt:
    print("interrupted; run the same command again to resume.", file=sys.stderr)
    sys.exit(130)
  print(f"written to {cfg.workdir}/ (encoder.npz, encoder.json, embeddings.npy, pretrain.json)")


def cli(argv=None):
  """The `jaxal-pretrain` console script."""
  start(main, __name__, argv)


if __name__ == "__main__":
  cli()
