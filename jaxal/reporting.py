"""Aggregation over seeds (mean ± standard error), learning-curve plots and markdown summaries.

Everything here reads the `results.json` structure written by `experiments/run.py`:
{"config": {...}, "runs": [{"strategy", "seed", "rounds": [{"round", "labels", "interactions",
"test_accuracy", "per_class_accuracy", ...}]}]}.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np


def write_atomic(path: str, text: str | bytes) -> None:
  """Writes `path` through a temporary file in the same folder and a rename, so a reader (or a
  crash) never sees a half-written file."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  mode = "wb" if isinstance(text, bytes) else "w"
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, mode) as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json_atomic(path: str, obj: Any) -> None:
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
  fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
  for name, a in agg.items():
    line, = ax.plot(a["x"], a["mean"], marker="o", markersize=2.5, label=f"{name} (n={a['n']})")
    ax.fill_between(a["x"], a["mean"] - a["stderr"], a["mean"] + a["stderr"],
                    color=line.get_color(), alpha=0.2, linewidth=0)
  ax.set_xlabel({"labels": "labeled images", "interactions": "human interactions"}.get(x_key, x_key))
  ax.set_ylabel(metric.replace("_", " "))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title, fontsize=10)
  fig.tight_layout()
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".png")
  os.close(fd)
  try:
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    if os.path.exists(tmp):
      os.unlink(tmp)


def summary_markdown(results: Mapping, x_key: str = "labels") -> str:
  """A markdown report: the setup, then per strategy the final accuracy (mean ± s.e.), the AUBC and
  accuracy at a few budgets."""
  cfg = results.get("config", {})
  runs = results["runs"]
  agg = aggregate(runs, "test_accuracy", x_key)
  lines = ["# Active-learning run", ""]
  keys = ("dataset", "data_dir", "model", "uncertainty", "strategies", "seeds", "initial_size",
          "query_size", "rounds", "epochs", "val_size", "pool_subset", "classes")
  lines += [f"- **{k}**: {cfg[k]}" for k in keys if cfg.get(k) not in (None, "")]
  lines += ["", "Test accuracy, mean ± standard error over seeds, at a few rounds (the column names "
            f"the first strategy's {x_key}); AUBC is the normalised area under the accuracy-vs-"
            f"{x_key} curve.", ""]
  first = next(iter(agg.values()))
  n_rounds = len(first["x"])
  marks = sorted(set([0, n_rounds // 4, n_rounds // 2, n_rounds - 1]))
  head = ("| strategy | seeds | AUBC | " +
          " | ".join(f"round {m} ({first['x'][m]:.0f} {x_key})" for m in marks) +
          f" | final {x_key} |")
  lines += [head, "|" + "---|" * (4 + len(marks))]
  for name, a in agg.items():
    cells = [f"{a['mean'][m]:.3f} ± {a['stderr'][m]:.3f}" if m < len(a["mean"]) else "–"
             for m in marks]
    cells.append(f"{a['x'][-1]:.0f}" + (" (mean)" if a["x_is_mean"] else ""))
    per_seed = [aubc(x, v) for x, v in zip(a["xs"], a["values"])]
    au_m, au_se = mean_and_stderr(np.array(per_seed))
    lines.append(f"| {name} | {a['n']} | {au_m:.3f} ± {au_se:.3f} | " + " | ".join(cells) + " |")
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
