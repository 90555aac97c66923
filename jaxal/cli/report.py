r"""Reports from one or many results directories (each written by `python -m experiments.run`).

  jaxal-report runs/a runs/b ... --out=report [--error] [--targets=0.9,0.95]

Writes into --out:
  curves.png               accuracy vs labeled images, one panel per experiment (dataset / model),
                           mean ± standard-error bands over seeds per strategy;
  curves_interactions.png  the same against human interactions, when any run counts them apart
                           from labels (cluster-based AL);
  per_class_<n>.png        per-class accuracy panels for each experiment (n = its position);
  table.md                 the papers' table: final test accuracy (or error, --error) ± standard
                           error, AUBC and labels to reach each --targets accuracy, with the number
                           of seeds, per experiment x strategy.
Directories are merged when every setting that changes results is equal (their runs must then be
different strategies or seeds); the strategies, the seeds and the settings a resumed run may change
(jaxal.workdir.RESUME_IGNORED: workdir, cache_dir, ...) are not compared. Directories whose
settings differ are separate groups: panels and table sections of their own, titled by the
experiment label and the settings that tell them apart, and the differences are printed
("group 2 differs from group 1: epochs 50 -> 2"); --strict refuses them instead.
Reduced-scale runs (--train_limit / --test_limit) say so in their titles and table sections.
"""
from __future__ import annotations

import json
import os
import sys

from absl import flags

from jaxal.cli import start

from jaxal import reporting
from jaxal.workdir import RESUME_IGNORED, _comparable, config_differences

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "report", "Output folder.")
flags.DEFINE_boolean("error", False, "Tabulate test error instead of test accuracy.")
flags.DEFINE_string("targets", "", "Comma-separated target accuracies for 'labels to reach', "
                    "e.g. 0.9,0.95.")
flags.DEFINE_boolean("per_class", True, "Write the per-class accuracy panels.")
flags.DEFINE_string("metric", "test_accuracy", "Accuracy plotted and tabulated: test_accuracy (the "
                    "deterministic network, or an ensemble's mean) or test_accuracy_mc (the "
                    "MC-dropout mean; runs with --test_mc_samples).")
flags.DEFINE_boolean("strict", False, "Refuse directories whose settings differ (apart from "
                     "strategies, seeds and settings that do not change results) instead of "
                     "reporting them as separate groups.")
METRICS = ("test_accuracy", "test_accuracy_mc")


class ReportError(ValueError):
  pass


# Not compared: what a report merges (strategies, seeds); RESUME_IGNORED is left out by
# config_differences.
MERGED = ("strategies", "seeds")
# Recorded from the data, not set: they differ only when settings (or the data files) do, so the
# printed differences and the titles name them only when nothing else differs.
DERIVED = ("num_classes", "class_names", "train_size", "test_size", "image_shape", "channel_mean",
           "channel_std")
# Settings the experiment label (reporting.experiment_label) already shows.
LABELLED = ("dataset", "data_dir", "model", "classes", "class_map", "noise", "noise_fraction",
            "pretrained", "uncertainty")
REDUCED = ("train_limit", "test_limit")


class Group:
  """Results directories with one comparable configuration: their runs, merged."""

  def __init__(self, config: dict, label: str):
    self.config, self.label, self.title = config, label, label
    self.dirs: list[str] = []
    self.runs: list[dict] = []
    self.class_names: list[str] | None = None


def comparable_config(config: dict) -> dict:
  """The settings compared between directories: the config record without MERGED (and, through
  config_differences, RESUME_IGNORED); a terminal and a file-based human oracle are the same."""
  return {k: v for k, v in _comparable(config).items() if k not in MERGED}


def _differences(a: dict, b: dict) -> list[str]:
  diffs = config_differences(a, b)
  settings = [d for d in diffs if d.split(" ", 1)[0] not in DERIVED]
  return settings or diffs


def _value(v) -> str:
  return v if isinstance(v, str) else json.dumps(v)


def load_directories(dirs: list[str]) -> list[Group]:
  """Groups of results directories with equal comparable settings, in the order first met, each
  titled by its experiment label plus the settings that tell it apart from the other groups."""
  groups: list[Group] = []
  for d in dirs:
    path = os.path.join(d, "results.json")
    if not os.path.isfile(path):
      raise ReportError(f"{d}: no results.json (is it a results directory of experiments.run?)")
    with open(path) as f:
      res = json.load(f)
    config = comparable_config(res.get("config", {}))
    group = next((g for g in groups if not config_differences(g.config, config)), None)
    if group is None:
      group = Group(config, reporting.experiment_label(res.get("config", {})))
      groups.append(group)
    seen = {(r["strategy"], r["seed"]) for r in group.runs}
    for r in res["runs"]:
      if (r["strategy"], r["seed"]) in seen:
        raise ReportError(f"{d}: strategy {r['strategy']!r} seed {r['seed']} of {group.label!r} "
                          "is already in an earlier directory.")
      group.runs.append(r)
    group.dirs.append(d)
    if group.class_names is None and res.get("config", {}).get("class_names"):
      group.class_names = list(res["config"]["class_names"])
  _set_titles(groups)
  return groups


def _set_titles(groups: list[Group]) -> None:
  """label [key=value, ...]: the settings (not the label's own, not derived) whose values differ
  between the groups, where set (not unset, 0, "" or false), and the reduced scale when set;
  " (group n)" is added to titles that still tie."""
  configs = [json.loads(json.dumps(g.config)) for g in groups]
  keys = sorted({k for c in configs for k in c} - set(RESUME_IGNORED) - set(DERIVED) -
                set(LABELLED))
  varying = {k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1}
  for g, c in zip(groups, configs):
    shown = [k for k in keys if (k in varying or k in REDUCED) and c.get(k) not in
             (None, 0, "", False, [], {})]
    g.title = g.label + (f" [{', '.join(f'{k}={_value(c[k])}' for k in shown)}]" if shown else "")
  titles = [g.title for g in groups]
  for i, g in enumerate(groups):
    if titles.count(g.title) > 1:
      g.title += f" (group {i + 1})"


def group_differences(groups: list[Group]) -> list[str]:
  """One line per group after the first: how its settings differ from the first earlier group of
  the same experiment label (else from group 1)."""
  lines = []
  for i, g in enumerate(groups[1:], start=1):
    j = next((j for j in range(i) if groups[j].label == g.label), 0)
    lines.append(f"group {i + 1} differs from group {j + 1}: "
                 f"{', '.join(_differences(groups[j].config, g.config))}")
  return lines


def load_groups(dirs: list[str]) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
  """{group title: runs} and {title: class names} from results directories (see
  load_directories)."""
  groups = load_directories(dirs)
  return ({g.title: g.runs for g in groups},
          {g.title: g.class_names for g in groups if g.class_names})


def write_report(dirs: list[str], out: str, error: bool = False,
                 targets: tuple[float, ...] = (), per_class: bool = True,
                 metric: str = "test_accuracy", strict: bool = False,
                 log=print) -> list[str]:
  """Writes the report files into `out`; returns their paths. Directories whose settings differ
  are reported as separate groups, and `log` gets the groups and their differences; with `strict`
  they are a ReportError instead."""
  if not dirs:
    raise ReportError("name at least one results directory.")
  if metric not in METRICS:
    raise ReportError(f"--metric={metric!r}: accepted: {', '.join(METRICS)}.")
  found = load_directories(dirs)
  if len(found) > 1:
    diffs = group_differences(found)
    if strict:
      raise ReportError("--strict: the directories' settings differ: " + "; ".join(diffs) + ".")
    log(f"{len(found)} groups of directories with different settings, reported apart:")
    for i, g in enumerate(found):
      log(f"  group {i + 1}: {g.title}: {', '.join(g.dirs)}")
    for line in diffs:
      log(line)
  groups = {g.title: g.runs for g in found}
  classes = {g.title: g.class_names for g in found if g.class_names}
  notes = {g.title: reporting.reduced_scale_line(g.config) for g in found}
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
                                                     metric=metric, notes=notes))
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
                           FLAGS.metric, FLAGS.strict)
  except ReportError as e:
    raise SystemExit(f"error: {e}") from None
  print("\n".join(written))
  with open(written[-1]) as f:
    sys.stdout.write(f.read())


def cli(argv=None):
  """The `jaxal-report` console script (`--help` exits 0)."""
  start(main, __name__, argv)


if __name__ == "__main__":
  cli()
