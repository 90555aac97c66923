r"""Label a collection of unlabeled images in the browser, with active learning choosing what to ask.

  jaxal-label --data_dir=photos/ --classes=cat,dog,bird            # then open the printed address
  jaxal-label --data_dir=scans.zip --initial_labels=seed.csv --workdir=runs/scans
  jaxal-label --import_labelstudio=export.json --workdir=runs/scans # answers from Label Studio

(`python -m experiments.label` from the repository's root is the same command.) It is `jaxal-run
--preset=label`: every flag of jaxal-run applies (`--strategies`, `--model`, `--rounds`,
`--query_size`, `--oracle=human|terminal` to answer in CSV files or the terminal instead, ...).
The page listens on 127.0.0.1 (`--host`, `--port`) behind a token printed in its address. Each
answer is written at once to `<workdir>/round_NNN/labels.csv`; stop at any moment (the page's Stop
button or Ctrl-C) and run the same command to continue on the same round. When the last round is
answered, `<workdir>/export/` holds labels.csv (path,label) and the trained network
(`jaxal.load_model`).

Exit codes: 0 every round answered; 3 stopped before the end (run again to continue); 1 an error.
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags

from jaxal.cli import run as run_cli

FLAGS = flags.FLAGS
flags.DEFINE_string("import_labelstudio", "", "A Label Studio JSON or JSON_MIN export of the open "
                    "round's tasks (<workdir>/round_NNN/labelstudio_tasks.json): its answers are "
                    "written into the round's labels.csv, then the run goes on.")


def main(argv):
  if FLAGS.import_labelstudio:
    _import(FLAGS.import_labelstudio)
  run_cli.main(argv)


def _import(path: str) -> None:
  """Fills the open round's labels.csv from a Label Studio export (answers already given are
  kept); the run then goes on as usual."""
  from jaxal.human import labelstudio  # pylint: disable=import-outside-toplevel
  from jaxal.human.answers import (ClassNames, _csv_header,  # pylint: disable=import-outside-toplevel
                                   read_answers, write_answers)
  from jaxal.human.pending import open_question  # pylint: disable=import-outside-toplevel
  cfg = run_cli.resolve_config()
  asked = open_question(cfg.workdir)
  if asked is None:
    sys.exit(f"error: --import_labelstudio: {cfg.workdir} has no open round to answer (run the "
             "command once to ask one).")
  r, items = asked
  with open(os.path.join(cfg.workdir, "config.json")) as f:
    config = json.load(f)
  classes = ClassNames(tuple(config["class_names"]))
  csv_path = os.path.join(cfg.workdir, f"round_{r:03d}", "labels.csv")
  try:
    got = labelstudio.read_export(path, items, classes)
    have = (read_answers(csv_path, items, classes)[0] if os.path.exists(csv_path)
            else [None] * len(items))
  except ValueError as e:
    sys.exit(f"error: --import_labelstudio: {e}")
  merged = [h if h is not None else g for h, g in zip(have, got)]
  write_answers(csv_path, items, merged, classes,
                _csv_header("image", r, int(config["rounds"]), classes))
  filled = sum(h is None and g is not None for h, g in zip(have, got))
  print(f"--import_labelstudio: {filled} answers of round {r} read from {path}; "
        f"{sum(m is None for m in merged)} still open.")


def cli(argv=None):
  """The `jaxal-label` console script: `jaxal-run` with `--preset=label` unless a preset is
  given."""
  argv = list(sys.argv if argv is None else argv)
  if not any(a.startswith("--preset") for a in argv[1:]):
    argv.insert(1, "--preset=label")
  run_cli.cli(argv, main_fn=main, module=__name__)


if __name__ == "__main__":
  cli()
