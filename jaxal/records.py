"""The results.json format of a round: one row per seed and evaluation, from host metrics.

Shared by the simulated driver (`jaxal.driver`) and a person's rounds (`jaxal.human`), so both write
the same rows.
"""
from __future__ import annotations

import numpy as np


EXTRA_METRICS = ("cluster_labeled", "cluster_label_accuracy", "clusters_shown",
                 "clusters_accepted", "test_accuracy_mc")


def _json_scalar(v):
  v = np.asarray(v).item()
  return None if isinstance(v, float) and np.isnan(v) else v


def _json_number(v):
  """An int when the value is whole (one network), else a float (an ensemble's mean)."""
  v = float(np.asarray(v))
  return int(v) if v.is_integer() else v


def record_round(records: list[dict], r: int, metrics: dict, index_map: np.ndarray,
                 seconds: float) -> None:
  """Appends evaluation `r` of every seed (host metrics with a leading seed axis) to `records`."""
  for i, rec in enumerate(records):
    row = {"round": r, "labels": int(metrics["labels"][i]),
           "interactions": int(metrics["interactions"][i])}
    if "test_accuracy" in metrics:
      row["test_accuracy"] = float(metrics["test_accuracy"][i])
      row["test_ece"] = float(metrics["test_ece"][i])
    row["val_accuracy"] = _json_scalar(metrics["val_accuracy"][i])   # None: no validation set
    row["train_loss"] = float(metrics["train_loss"][i])
    row.update({name: _json_number(metrics[name][i]) for name in ("best_epoch", "epochs_run")
                if name in metrics})
    if "per_class_accuracy" in metrics:
      row["per_class_accuracy"] = [None if np.isnan(a) else float(a)
                                   for a in metrics["per_class_accuracy"][i]]
    row["selected"] = ([int(index_map[j]) for j in metrics["selected"][i] if j >= 0]
                       if "selected" in metrics else [])
    row["seconds"] = seconds
    row.update({name: _json_scalar(metrics[name][i]) for name in EXTRA_METRICS if name in metrics})
    rec["rounds"].append(row)
