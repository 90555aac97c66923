"""experiments.report: the papers' table checked against hand-computed means and standard errors,
merging of results directories, per-class panels, and clear errors."""
import json
import os
import subprocess
import sys

import pytest

from experiments import report
from jaxal import reporting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(d, config, runs):
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, "results.json"), "w") as f:
    json.dump({"config": config, "runs": runs}, f)
  return str(d)


def _run(strategy, seed, accs, labels=(10, 20, 30), per_class=None, interactions=None):
  rounds = []
  for i, (a, n) in enumerate(zip(accs, labels)):
    rounds.append({"round": i, "labels": n,
                   "interactions": (n - labels[0]) if interactions is None else interactions[i],
                   "test_accuracy": a,
                   "per_class_accuracy": per_class[i] if per_class else [a, a]})
  return {"strategy": strategy, "seed": seed, "rounds": rounds}


CFG = {"dataset": "idx", "data_dir": "/data/fashion_mnist", "model": "lenet5",
       "class_names": ["a", "b"]}


def test_table_values_equal_hand_computed_mean_stderr_aubc_and_labels_to_reach(tmp_path):
  d = _write(tmp_path / "r1", CFG, [_run("bald", 0, [0.5, 0.7, 0.9]),
                                    _run("bald", 1, [0.6, 0.8, 0.8]),
                                    _run("random", 0, [0.5, 0.6, 0.7])])
  groups, _ = report.load_groups([d])
  assert list(groups) == ["fashion_mnist / lenet5"]
  table = reporting.paper_table(groups, targets=(0.75, 0.95))
  # bald final: 0.9, 0.8 -> mean 85.00, s.e. = std([90, 80], ddof=1) / sqrt(2) = 5.00
  # AUBC per seed (trapezoids over 10..30, normalised): seed 0 = (0.6 + 0.8) / 2 = 0.70,
  # seed 1 = (0.7 + 0.8) / 2 = 0.75 -> 72.50 ± 2.50. Mean curve 0.55, 0.75, 0.85: 75% at 20 labels.
  assert "| fashion_mnist / lenet5 | bald | 2 | 30 | 85.00 ± 5.00 | 72.50 ± 2.50 | – | 20 | – |" in table
  assert "| fashion_mnist / lenet5 | random | 1 | 30 | 70.00 ± 0.00 | 60.00 ± 0.00 | – | – | – |" in table
  err = reporting.paper_table(groups, error=True)
  assert "| bald | 2 | 30 | 15.00 ± 5.00 |" in err


def test_directories_of_one_experiment_merge_and_duplicates_are_refused(tmp_path):
  a = _write(tmp_path / "a", CFG, [_run("bald", 0, [0.5, 0.7, 0.9])])
  b = _write(tmp_path / "b", CFG, [_run("bald", 1, [0.6, 0.8, 0.8])])
  c = _write(tmp_path / "c", {**CFG, "model": "cnn3"}, [_run("bald", 0, [0.4, 0.5, 0.6])])
  groups, classes = report.load_groups([a, b, c])
  assert {k: len(v) for k, v in groups.items()} == {"fashion_mnist / lenet5": 2,
                                                     "fashion_mnist / cnn3": 1}
  assert classes["fashion_mnist / lenet5"] == ["a", "b"]
  with pytest.raises(report.ReportError, match="strategy 'bald' seed 0 .* already"):
    report.load_groups([a, a])
  with pytest.raises(report.ReportError, match="no results.json"):
    report.load_groups([str(tmp_path / "missing")])


def test_write_report_makes_curves_per_class_panels_and_table(tmp_path):
  pc = [[0.2, None], [0.5, 0.6], [0.9, 0.7]]
  d = _write(tmp_path / "r", CFG, [
      _run("cluster", 0, [0.5, 0.7, 0.9], labels=(10, 60, 90), per_class=pc,
           interactions=[0, 3, 6]),
      _run("cluster", 1, [0.5, 0.6, 0.8], labels=(10, 50, 80), per_class=pc,
           interactions=[0, 3, 6])])
  out = tmp_path / "rep"
  written = report.write_report([d], str(out), targets=(0.8,))
  names = sorted(os.path.basename(p) for p in written)
  assert names == ["curves.png", "curves_interactions.png", "per_class_0.png", "table.md"]
  for p in written[:-1]:
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  assert "| cluster | 2 | 85 (mean) |" in (out / "table.md").read_text()  # 90 and 80 labels


@pytest.mark.slow
def test_cli_rejects_bad_targets_and_prints_the_table(tmp_path):
  d = _write(tmp_path / "r", CFG, [_run("bald", 0, [0.5, 0.7, 0.9])])
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, "-m", "experiments.report", d, f"--out={tmp_path / 'o'}"]
  p = subprocess.run(cmd + ["--targets=0.9,95"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert p.returncode != 0 and "--targets='0.9,95': accuracies must be in (0, 1]" in p.stderr
  p = subprocess.run(cmd + ["--targets=0.9"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert p.returncode == 0, p.stderr
  assert "| fashion_mnist / lenet5 | bald | 1 | 30 | 90.00 ± 0.00 |" in p.stdout


def test_final_ece_column_is_the_mean_and_stderr_of_the_seeds(tmp_path):
  runs = [_run("bald", 0, [0.5, 0.9, 0.9]), _run("bald", 1, [0.5, 0.8, 0.8])]
  runs[0]["rounds"][-1]["test_ece"] = 0.10
  runs[1]["rounds"][-1]["test_ece"] = 0.20
  groups, _ = report.load_groups([_write(tmp_path / "r", CFG, runs)])
  # ECE mean 0.15, s.e. = std([0.1, 0.2], ddof=1) / sqrt(2) = 0.05; AUBC 80.0 and 72.5 -> 76.25 ± 3.75
  assert "| 85.00 ± 5.00 | 76.25 ± 3.75 | 0.150 ± 0.050 |" in reporting.paper_table(groups)
  assert "| 0.150 ± 0.050 |" in reporting.summary_markdown({"config": CFG, "runs": runs})


def test_metric_test_accuracy_mc_is_tabulated_and_a_missing_one_is_named(tmp_path):
  runs = [_run("bald", 0, [0.5, 0.7, 0.9]), _run("bald", 1, [0.6, 0.8, 0.8])]
  for run, mc in zip(runs, ([0.55, 0.75, 0.95], [0.65, 0.85, 0.85])):
    for row, a in zip(run["rounds"], mc):
      row["test_accuracy_mc"] = a
  d = _write(tmp_path / "mc", CFG, runs)
  groups, _ = report.load_groups([d])
  table = reporting.paper_table(groups, targets=(0.8,), metric="test_accuracy_mc")
  # MC curve: seeds (0.55, 0.75, 0.95) and (0.65, 0.85, 0.85): final 90.00 ± 5.00, AUBC per seed
  # 0.75 / 0.80 -> 77.50 ± 2.50, mean curve 0.60, 0.80, 0.90 reaches 80% at 20 labels.
  assert "final MC-dropout test accuracy (%)" in table
  assert "| bald | 2 | 30 | 90.00 ± 5.00 | 77.50 ± 2.50 | – | 20 |" in table
  plain = _write(tmp_path / "plain", CFG, [_run("bald", 0, [0.5, 0.7, 0.9])])
  with pytest.raises(report.ReportError, match="test_accuracy_mc needs runs with --test_mc_samples"):
    report.write_report([plain], str(tmp_path / "out"), metric="test_accuracy_mc")
  with pytest.raises(report.ReportError, match="--metric='val': accepted: test_accuracy, "):
    report.write_report([plain], str(tmp_path / "out"), metric="val")
