"""Aggregation over seeds (mean ± standard error), learning-curve plots and markdown summaries.

Everything here reads the `results.json` structure written by `experiments/run.py`:
{"config": {...}, "runs": [{"strategy", "seed", "rounds": [{"round", "labels", "interactions",
"test_accuracy", "per_class_accuracy", ...}]}]}.
"""
from __future__ import annotations

import json
import os
import tempfile
import textwrap
from typing import Any, Mapping, Sequence

import numpy as np


def _umask() -> int:
  """The process's umask, read without changing it where /proc allows (else set and restored)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def write_atomic(path: str, text: str | bytes) -> None:
  """Writes `path` through a temporary file in the same folder and a rename, so a reader (or a
  crash) never sees a half-written file. The file gets the mode a plain `open` would give it
  (0666 less the umask), not the temporary file's 0600. An OSError names `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  mode = "wb" if isinstance(text, bytes) else "w"
  tmp = None
  try:
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    with os.fdopen(fd, mode) as f:
      os.fchmod(f.fileno(), 0o666 & ~_umask())
      f.write(text)
    os.replace(tmp, path)
  except BaseException as e:
    if tmp is not None and os.path.exists(tmp):
      os.unlink(tmp)
    if isinstance(e, OSError) and e.filename is None:
      raise OSError(e.errno, e.strerror, path) from e
    raise


def write_json_atomic(path: str, obj: Any) -> None:
  """`write_atomic` of `obj` as indented JSON (NaN refused)."""
  write_atomic(path, json.dumps(obj, indent=1, allow_nan=False) + "\n")


def mean_and_stderr(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Mean and standard error of the mean (sample std with ddof=1 over sqrt(n)); the standard error
  is 0 for a single seed."""
  values = np.asarray(values, np.float64)
  n = values.shape[axis]
  mean = values.mean(axis=axis)
  if n < 2:
    return mean, np.zeros_like(mean)
  return mean, values.std(axis=axis, ddof=1) / np.sqrt(n)


def aggregate(runs: Sequence[Mapping], metric: str = "test_accuracy",
              x_key: str = "labels") -> dict[str, dict[str, np.ndarray]]:
  """Per strategy: x values, the metric's mean and standard error over seeds, and the seed count.

  Seeds are averaged round by round. When seeds of one strategy reach different x values (cluster
  annotation labels a data-dependent number of images), x is the seeds' mean x of each round and
  `x_is_mean` is True. Seeds with different numbers of rounds are a ValueError."""
  out: dict[str, dict[str, np.ndarray]] = {}
  for strategy in dict.fromkeys(r["strategy"] for r in runs):
    group = [r for r in runs if r["strategy"] == strategy]
    if len({len(r["rounds"]) for r in group}) != 1:
      raise ValueError(f"strategy {strategy!r}: seeds have different numbers of rounds.")
    xs = np.array([[row[x_key] for row in r["rounds"]] for r in group], np.float64)
    same = bool((xs == xs[0]).all())
    if any(row.get(metric) is None for r in group for row in r["rounds"]):
      raise ValueError(f"strategy {strategy!r}: the metric {metric!r} is not recorded in every "
                       "round (test_accuracy_mc needs runs with --test_mc_samples > 0).")
    ys = np.array([[row[metric] for row in r["rounds"]] for r in group], np.float64)
    mean, se = mean_and_stderr(ys)
    out[strategy] = {"x": xs[0] if same else xs.mean(0), "mean": mean, "stderr": se,
                     "n": len(group), "values": ys, "xs": xs, "x_is_mean": not same}
  return out


def aubc(x: np.ndarray, y: np.ndarray) -> float:
  """Area under the budget-accuracy curve, normalised by the budget range (trapezoids), so it is a
  mean accuracy in [0, 1]. A single point gives that point's value."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.size < 2 or x[-1] == x[0]:
    return float(y.mean())
  return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0 / (x[-1] - x[0]))


def labels_to_reach(x: np.ndarray, y: np.ndarray, target: float) -> float | None:
  """The first budget x at which accuracy y reaches `target` (None if it never does)."""
  hit = np.flatnonzero(np.asarray(y) >= target)
  return float(np.asarray(x)[hit[0]]) if hit.size else None


def plot_curves(runs: Sequence[Mapping], path: str, x_key: str = "labels",
                metric: str = "test_accuracy", title: str | None = None) -> None:
  """Mean metric vs x with a ±1 standard-error band per strategy, saved to `path` (atomically)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  agg = aggregate(runs, metric, x_key)
  many = len(agg) > 6   # many strategies: legend beside the axes, line styles vary, thin bands
  fig, ax = plt.subplots(figsize=(9.0 if many else 6.4, 5.0 if many else 4.2), dpi=120)
  styles = ("-", "--", ":", "-.")
  for i, (name, a) in enumerate(agg.items()):
    line, = ax.plot(a["x"], a["mean"], marker="o", markersize=2.5, label=f"{name} (n={a['n']})",
                    linestyle=styles[(i // 10) % len(styles)] if many else "-")
    ax.fill_between(a["x"], a["mean"] - a["stderr"], a["mean"] + a["stderr"],
                    color=line.get_color(), alpha=0.08 if many else 0.2, linewidth=0)
  ax.set_xlabel({"labels": "labeled images", "interactions": "human interactions"}.get(x_key, x_key))
  ax.set_ylabel(metric.replace("_", " "))
  ax.grid(alpha=0.3)
  if many:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
  else:
    ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=10)
  fig.tight_layout()
  _save(fig, path)


def _final_ece_cell(runs: Sequence[Mapping], strategy: str) -> str:
  """The strategy's final expected calibration error, mean ± s.e. over seeds ("–" if unrecorded)."""
  eces = [r["rounds"][-1].get("test_ece") for r in runs if r["strategy"] == strategy]
  if not eces or any(e is None for e in eces):
    return "–"
  e_m, e_se = mean_and_stderr(np.array(eces))
  return f"{float(e_m):.3f} ± {float(e_se):.3f}"


def summary_markdown(results: Mapping, x_key: str = "labels") -> str:
  """A markdown report: the setup, then per strategy the final accuracy (mean ± s.e.), the AUBC and
  accuracy at a few budgets."""
  cfg = results.get("config", {})
  runs = results["runs"]
  agg = aggregate(runs, "test_accuracy", x_key)
  lines = ["# Active-learning run", ""]
  reduced = reduced_scale_line(cfg)
  if reduced:
    lines += [reduced, ""]
  keys = ("dataset", "data_dir", "model", "uncertainty", "strategies", "seeds", "initial_size",
          "query_size", "rounds", "epochs", "val_size", "pool_subset", "classes")
  lines += [f"- **{k}**: {cfg[k]}" for k in keys if cfg.get(k) not in (None, "")]
  lines += ["", "Test accuracy, mean ± standard error over seeds, at a few rounds (the column names "
            f"the first strategy's {x_key}); AUBC is the normalised area under the accuracy-vs-"
            f"{x_key} curve; ECE is the final expected calibration error (15 bins).", ""]
  first = next(iter(agg.values()))
  n_rounds = len(first["x"])
  marks = sorted(set([0, n_rounds // 4, n_rounds // 2, n_rounds - 1]))
  head = ("| strategy | seeds | AUBC | " +
          " | ".join(f"round {m} ({first['x'][m]:.0f} {x_key})" for m in marks) +
          f" | final {x_key} | final ECE |")
  lines += [head, "|" + "---|" * (5 + len(marks))]
  for name, a in agg.items():
    cells = [f"{a['mean'][m]:.3f} ± {a['stderr'][m]:.3f}" if m < len(a["mean"]) else "–"
             for m in marks]
    cells.append(f"{a['x'][-1]:.0f}" + (" (mean)" if a["x_is_mean"] else ""))
    cells.append(_final_ece_cell(runs, name))
    per_seed = [aubc(x, v) for x, v in zip(a["xs"], a["values"])]
    au_m, au_se = mean_and_stderr(np.array(per_seed))
    lines.append(f"| {name} | {a['n']} | {au_m:.3f} ± {au_se:.3f} | " + " | ".join(cells) + " |")
  stopped = [r for r in runs if r.get("stopped")]
  if stopped:
    lines += ["", "Stopped early by a stopping rule (the rule that fired first for the seed, the "
              "round it fired at, and the labels of the final evaluation):", ""]
    lines += [f"- {r['strategy']} seed {r['seed']}: {r['stopped']['rule']} at round "
              f"{r['stopped']['round']}, {r['rounds'][-1]['labels']} labels" for r in stopped]
  clustered = [r for r in runs if "cluster_labeled" in r["rounds"][0]]
  if clustered:
    lines += ["", "Cluster annotation (totals over rounds, mean over seeds): images labeled through "
              "clusters, the share of them labeled correctly, clusters shown / accepted, and the "
              "final test accuracy against human interactions.", "",
              "| strategy | cluster-labeled images | their accuracy | clusters shown | accepted | "
              "interactions | final accuracy |", "|---|---|---|---|---|---|---|"]
    for strategy in dict.fromkeys(r["strategy"] for r in clustered):
      group = [r for r in clustered if r["strategy"] == strategy]
      tot = lambda key: np.mean([sum(row.get(key) or 0 for row in r["rounds"]) for r in group])
      correct = np.mean([sum((row.get("cluster_labeled") or 0) *
                             (row.get("cluster_label_accuracy") or 0) for row in r["rounds"])
                         for r in group])
      n_lab = tot("cluster_labeled")
      acc = f"{correct / n_lab:.3f}" if n_lab else "–"
      final = np.mean([r["rounds"][-1]["test_accuracy"] for r in group])
      inter = np.mean([r["rounds"][-1]["interactions"] for r in group])
      lines.append(f"| {strategy} | {n_lab:.0f} | {acc} | {tot('clusters_shown'):.0f} | "
                   f"{tot('clusters_accepted'):.0f} | {inter:.0f} | {final:.3f} |")
  return "\n".join(lines) + "\n"


def reduced_scale_line(config: Mapping[str, Any]) -> str:
  """"Reduced scale: train_limit=3000, test_limit=1000 (a class-stratified sample)" when the run
  kept only a sample of the training or test split (`--train_limit` / `--test_limit`), else ""."""
  parts = [f"{k}={config[k]}" for k in ("train_limit", "test_limit") if config.get(k)]
  if not parts:
    return ""
  return f"Reduced scale: {', '.join(parts)} (a class-stratified sample)."


def experiment_label(config: Mapping[str, Any]) -> str:
  """A short "dataset / model" name for a results directory's config (the data folder's name for
  idx / folder / npz datasets; the class subset, merge map and input noise when set)."""
  ds = str(config.get("dataset", "?"))
  if ds in ("idx", "folder", "npz") and config.get("data_dir"):
    ds = os.path.splitext(os.path.basename(os.path.normpath(str(config["data_dir"]))))[0]
  extra = []
  if config.get("classes"):
    extra.append(f"classes {config['classes']}")
  if config.get("class_map"):
    extra.append(os.path.splitext(os.path.basename(str(config["class_map"])))[0])
  if config.get("noise") not in (None, "", "none"):
    extra.append(f"{config['noise']} noise {config.get('noise_fraction', '')}".rstrip())
  if config.get("pretrained"):
    extra.append("pretrained")
  if config.get("uncertainty") not in (None, "", "deterministic"):
    extra.append(str(config["uncertainty"]))
  name = f"{ds} / {config.get('model', '?')}"
  return name + (f" ({', '.join(extra)})" if extra else "")


def _save(fig, path: str) -> None:
  import matplotlib.pyplot as plt
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
  os.close(fd)
  try:
    fig.savefig(tmp, format="png")
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a picture is an ordinary file
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    if os.path.exists(tmp):
      os.unlink(tmp)


def plot_groups(groups: Mapping[str, Sequence[Mapping]], path: str, x_key: str = "labels",
                metric: str = "test_accuracy") -> None:
  """One panel per experiment (title: its label) of mean `metric` vs `x_key` with ±1 standard-error
  bands per strategy; panels in a grid of at most 3 columns."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(groups)
  cols = min(3, len(names))
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), dpi=110, squeeze=False)
  for ax, name in zip(axes.flat, names):
    for strategy, a in aggregate(groups[name], metric, x_key).items():
      line, = ax.plot(a["x"], a["mean"], marker="o", markersize=2,
                      label=f"{strategy} (n={a['n']})")
      ax.fill_between(a["x"], a["mean"] - a["stderr"], a["mean"] + a["stderr"],
                      color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_title(textwrap.fill(name, 60), fontsize=9)
    ax.set_xlabel({"labels": "labeled images", "interactions": "human interactions"}.get(
        x_key, x_key))
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  _save(fig, path)


def plot_per_class(runs: Sequence[Mapping], path: str, class_names: Sequence[str] | None = None,
                   x_key: str = "labels", title: str | None = None) -> None:
  """Per-class accuracy (recall) vs `x_key`: one panel per class, one line per strategy with a ±1
  standard-error band over seeds. Rounds where a class has no test item (None) are gaps."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  num_classes = len(runs[0]["rounds"][0]["per_class_accuracy"])
  names = list(class_names or [str(c) for c in range(num_classes)])
  if len(names) != num_classes:
    raise ValueError(f"plot_per_class: {len(names)} class names for {num_classes} classes.")
  cols = min(5, num_classes)
  rows = -(-num_classes // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows + 0.6), dpi=110,
                           squeeze=False, sharey=True)
  strategies = list(dict.fromkeys(r["strategy"] for r in runs))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for c in range(num_classes):
    ax = axes.flat[c]
    for i, strategy in enumerate(strategies):
      group = [r for r in runs if r["strategy"] == strategy]
      xs = np.array([[row[x_key] for row in r["rounds"]] for r in group], np.float64).mean(0)
      ys = np.array([[np.nan if row["per_class_accuracy"][c] is None
                      else row["per_class_accuracy"][c] for row in r["rounds"]] for r in group],
                    np.float64)
      with np.errstate(invalid="ignore"):
        mean, se = mean_and_stderr(ys)
      color = colors[i % len(colors)]
      ax.plot(xs, mean, color=color, linewidth=1.2, label=strategy)
      ax.fill_between(xs, mean - se, mean + se, color=color, alpha=0.2, linewidth=0)
    ax.set_title(names[c], fontsize=9)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)
    if c % cols == 0:
      ax.set_ylabel("class accuracy", fontsize=8)
    if c // cols == rows - 1:
      ax.set_xlabel({"labels": "labeled images"}.get(x_key, x_key), fontsize=8)
  for ax in list(axes.flat)[num_classes:]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0.06, 1, 1))
  _save(fig, path)


def paper_table(groups: Mapping[str, Sequence[Mapping]], error: bool = False,
                targets: Sequence[float] = (), metric: str = "test_accuracy",
                notes: Mapping[str, str] | None = None) -> str:
  """A markdown table in the papers' form: one row per experiment x strategy with the number of
  seeds, the final budget, the final test accuracy (or test error with `error`) as mean ± standard
  error over seeds, the AUBC (mean ± s.e. of the per-seed values), the final expected calibration
  error (when recorded) and, for each target accuracy,
  the labels at which the mean curve first reaches it. `metric` is the per-round accuracy read
  ("test_accuracy", or "test_accuracy_mc" for runs with `--test_mc_samples`).

  With several groups (experiments, or runs of one experiment with different settings), each is a
  section of its own: a "### <group name>" heading, its `notes` line (e.g. the reduced scale) and
  its rows; a single group's note is written above its table."""
  what = "test error (%)" if error else "test accuracy (%)"
  if metric == "test_accuracy_mc":
    what = "MC-dropout " + what
  head = ["experiment", "strategy", "seeds", "labels", f"final {what}", "AUBC (%)", "final ECE"]
  head += [f"labels to {t:.0%}" for t in targets]
  notes = notes or {}
  sections = len(groups) > 1
  lines: list[str] = []
  for name, runs in groups.items():
    if sections:
      lines += ([""] if lines else []) + [f"### {name}", ""]
    if notes.get(name):
      lines += [notes[name], ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for strategy, a in aggregate(runs, metric, "labels").items():
      final = a["values"][:, -1]
      vals = (1.0 - final) if error else final
      m, se = mean_and_stderr(vals * 100)
      au = np.array([aubc(x, v) for x, v in zip(a["xs"], a["values"])]) * 100
      au_m, au_se = mean_and_stderr(au)
      cells = [name, strategy, str(a["n"]),
               f"{a['x'][-1]:.0f}" + (" (mean)" if a["x_is_mean"] else ""),
               f"{float(m):.2f} ± {float(se):.2f}", f"{float(au_m):.2f} ± {float(au_se):.2f}"]
      cells.append(_final_ece_cell(runs, strategy))
      for t in targets:
        hit = labels_to_reach(a["x"], a["mean"], t)
        cells.append("–" if hit is None else f"{hit:.0f}")
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
