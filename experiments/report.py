r"""Reports from one or many results directories (each written by `python -m experiments.run`).

  python -m experiments.report runs/a runs/b ... --out=report [--error] [--targets=0.9,0.95]

Writes into --out:
  curves.png               accuracy vs labeled images, one panel per experiment (dataset / model),
                           mean ± standard-error bands over seeds per strategy;
  curves_interactions.png  the same against human interactions, when any run counts them apart
                           from labels (cluster-based AL);
  per_class_<n>.png        per-class accuracy panels for each experiment (n = its position);
  table.md                 the papers' table: final test accuracy (or error, --error) ± standard
                           error, AUBC and labels to reach each --targets accuracy, with the number
                           of seeds, per experiment x strategy.
Directories with the same experiment label are merged (their runs must be different strategies or
seeds).
"""
from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from jaxal import reporting

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "report", "Output folder.")
flags.DEFINE_boolean("error", False, "Tabulate test error instead of test accuracy.")
flags.DEFINE_string("targets", "", "Comma-separated target accuracies for 'labels to reach', "
                    "e.g. 0.9,0.95.")
flags.DEFINE_boolean("per_class", True, "Write the per-class accuracy panels.")
flags.DEFINE_string("metric", "test_accuracy", "Accuracy plotted and tabulated: test_accuracy (the "
                    "deterministic network, or an ensemble's mean) or test_accuracy_mc (the "
                    "MC-dropout mean; runs with --test_mc_samples).")
METRICS = ("test_accuracy", "test_accuracy_mc")


class ReportError(ValueError):
  pass


def load_groups(dirs: list[str]) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
  """{experiment label: runs} and {label: class names} from results directories."""
  groups: dict[str, list[dict]] = {}
  classes: dict[str, list[str]] = {}
  for d in dirs:
    path = os.path.join(d, "results.json")
    if not os.path.isfile(path):
      raise ReportError(f"{d}: no results.json (is it a results directory of experiments.run?)")
    with open(path) as f:
      res = json.load(f)
    label = reporting.experiment_label(res.get("config", {}))
    runs = groups.setdefault(label, [])
    seen = {(r["strategy"], r["seed"]) for r in runs}
    for r in res["runs"]:
      if (r["strategy"], r["seed"]) in seen:
        raise ReportError(f"{d}: strategy {r['strategy']!r} seed {r['seed']} of {label!r} is "
                          "already in an earlier directory.")
      runs.append(r)
    names = res.get("config", {}).get("class_names")
    if names:
      classes.setdefault(label, list(names))
  return groups, classes


def write_report(dirs: list[str], out: str, error: bool = False,
                 targets: tuple[float, ...] = (), per_class: bool = True,
                 metric: str = "test_accuracy") -> list[str]:
  """Writes the report files into `out`; returns their paths."""
  if not dirs:
    raise ReportError("name at least one results directory.")
  if metric not in METRICS:
    raise ReportError(f"--metric={metric!r}: accepted: {', '.join(METRICS)}.")
  groups, classes = load_groups(dirs)
  written = []
  path = os.path.join(out, "curves.png")
  try:
    reporting.plot_groups(groups, path, metric=metric)
  except ValueError as e:
    raise ReportError(f"--metric={metric}: {e}") from None
  written.append(path)
  if any(row["interactions"] != row["labels"] - r["rounds"][0]["labels"]
         for runs in groups.values() for r in runs for row in r["rounds"]):
    path = os.path.join(out, "curves_interactions.png")
    reporting.plot_groups(groups, path, x_key="interactions")
    written.append(path)
  if per_class:
    for i, (label, runs) in enumerate(groups.items()):
      path = os.path.join(out, f"per_class_{i}.png")
      reporting.plot_per_class(runs, path, classes.get(label), title=label)
      written.append(path)
  path = os.path.join(out, "table.md")
  reporting.write_atomic(path, reporting.paper_table(groups, error=error, targets=targets,
                                                     metric=metric))
  written.append(path)
  return written


def main(argv):
  try:
    targets = tuple(float(t) for t in FLAGS.targets.split(",") if t.strip())
  except ValueError:
    raise SystemExit(f"error: --targets={FLAGS.targets!r}: expected numbers in (0, 1], e.g. "
                     "0.9,0.95.") from None
  if any(not 0 < t <= 1 for t in targets):
    raise SystemExit(f"error: --targets={FLAGS.targets!r}: accuracies must be in (0, 1].")
  try:
    written = write_report(argv[1:], FLAGS.out, FLAGS.error, targets, FLAGS.per_class,
                           FLAGS.metric)
  except ReportError as e:
    raise SystemExit(f"error: {e}") from None
  print("\n".join(written))
  with open(written[-1]) as f:
    sys.stdout.write(f.read())


if __name__ == "__main__":
  app.run(main)
