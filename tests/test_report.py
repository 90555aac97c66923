"""jaxal-report (jaxal.cli.report): the papers' table checked against hand-computed means and standard errors,
merging of results directories, per-class panels, and clear errors."""
import json
import os
import subprocess
import sys

import pytest

from jaxal.cli import report
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
  cmd = [sys.executable, "-m", "jaxal.cli.report", d, f"--out={tmp_path / 'o'}"]
  p = subprocess.run(cmd + ["--targets=0.9,95"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert p.returncode != 0 and "--targets='0.9,95': accuracies must be in (0, 1]" in p.stderr
  p = subprocess.run(cmd + ["--targets=0.9"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert p.returncode == 0, p.stderr
  assert "| fashion_mnist / lenet5 | bald | 1 | 30 | 90.00 ± 0.00 |" in p.stdout
  other = _write(tmp_path / "e2", {**CFG, "epochs": 2}, [_run("bald", 0, [0.5, 0.6, 0.7])])
  p = subprocess.run(cmd + [other, "--strict"], cwd=ROOT, env=env, capture_output=True, text=True)
  assert p.returncode != 0
  assert p.stderr.strip().splitlines()[-1] == (
      "error: --strict: the directories' settings differ: group 2 differs from group 1: "
      "epochs (unset) -> 2.")


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


def test_directories_with_equal_settings_merge_whatever_their_ignored_settings(tmp_path):
  base = {**CFG, "epochs": 50, "train_limit": 0, "oracle": "terminal"}
  a = _write(tmp_path / "a", {**base, "workdir": "runs/a", "strategies": "bald", "seeds": 1,
                              "cache_dir": "/c1", "jax_version": "0.4.30", "backend": "cpu"},
             [_run("bald", 0, [0.5, 0.7, 0.9])])
  b = _write(tmp_path / "b", {**base, "workdir": "runs/b", "strategies": "random", "seeds": 3,
                              "cache_dir": "", "jax_version": "0.5.0", "backend": "gpu",
                              "checkpoint_every": 0, "seed_batching": "vmap", "oracle": "human"},
             [_run("random", 0, [0.5, 0.6, 0.7])])
  groups = report.load_directories([a, b])
  assert [(g.title, g.dirs) for g in groups] == [("fashion_mnist / lenet5", [a, b])]
  assert report.group_differences(groups) == []
  printed = []
  report.write_report([a, b], str(tmp_path / "out"), per_class=False, log=printed.append,
                      strict=True)
  assert printed == []
  table = (tmp_path / "out" / "table.md").read_text()
  assert "###" not in table and "Reduced scale" not in table
  assert "| fashion_mnist / lenet5 | random | 1 |" in table


def test_directories_with_different_settings_are_reported_apart(tmp_path):
  full = {**CFG, "epochs": 50, "train_limit": 0, "test_limit": 0, "train_size": 60000,
          "channel_mean": [0.286]}
  reduced = {**full, "epochs": 2, "train_limit": 3000, "test_limit": 1000, "train_size": 3000,
             "channel_mean": [0.2857]}
  a = _write(tmp_path / "a", full, [_run("bald", 0, [0.5, 0.7, 0.9])])
  b = _write(tmp_path / "b", reduced, [_run("bald", 0, [0.4, 0.5, 0.6])])   # same strategy, seed
  c = _write(tmp_path / "c", full, [_run("bald", 1, [0.6, 0.8, 0.8])])
  d = _write(tmp_path / "d", {**full, "model": "cnn3", "learning_rate": 0.01},
             [_run("bald", 0, [0.3, 0.4, 0.5])])
  groups = report.load_directories([a, b, c, d])
  t1 = "fashion_mnist / lenet5 [epochs=50]"
  t2 = "fashion_mnist / lenet5 [epochs=2, test_limit=1000, train_limit=3000]"
  t3 = "fashion_mnist / cnn3 [epochs=50, learning_rate=0.01]"
  assert [(g.title, g.dirs, len(g.runs)) for g in groups] == [(t1, [a, c], 2), (t2, [b], 1),
                                                               (t3, [d], 1)]
  # Settings only; the derived train_size / channel_mean are not listed while a setting differs.
  assert report.group_differences(groups) == [
      "group 2 differs from group 1: epochs 50 -> 2, test_limit 0 -> 1000, train_limit 0 -> 3000",
      "group 3 differs from group 1: learning_rate (unset) -> 0.01, model \"lenet5\" -> \"cnn3\""]
  printed = []
  out = tmp_path / "out"
  written = report.write_report([a, b, c, d], str(out), per_class=True, log=printed.append)
  assert printed[0] == "3 groups of directories with different settings, reported apart:"
  assert printed[1] == f"  group 1: {t1}: {a}, {c}"
  assert printed[4].startswith("group 2 differs from group 1: epochs 50 -> 2")
  assert sorted(os.path.basename(p) for p in written) == [
      "curves.png", "per_class_0.png", "per_class_1.png", "per_class_2.png", "table.md"]
  table = (out / "table.md").read_text()
  sections = table.split("### ")[1:]
  assert [s.splitlines()[0] for s in sections] == [t1, t2, t3]
  assert "Reduced scale: train_limit=3000, test_limit=1000 (a class-stratified sample)." in sections[1]
  assert "Reduced scale" not in sections[0] + sections[2]
  assert f"| {t1} | bald | 2 | 30 | 85.00 ± 5.00 |" in sections[0]
  assert f"| {t2} | bald | 1 | 30 | 60.00 ± 0.00 |" in sections[1]
  with pytest.raises(report.ReportError, match=r"^--strict: the directories' settings differ: "
                     r"group 2 differs from group 1: epochs 50 -> 2, .*; group 3 differs"):
    report.write_report([a, b, c, d], str(tmp_path / "strict"), strict=True)
  assert not (tmp_path / "strict").exists()


def test_groups_differing_only_in_recorded_data_are_named_apart(tmp_path):
  a = _write(tmp_path / "a", {**CFG, "train_size": 60000}, [_run("bald", 0, [0.5, 0.7, 0.9])])
  b = _write(tmp_path / "b", {**CFG, "train_size": 50000}, [_run("bald", 0, [0.5, 0.7, 0.9])])
  groups = report.load_directories([a, b])
  assert [g.title for g in groups] == ["fashion_mnist / lenet5 (group 1)",
                                       "fashion_mnist / lenet5 (group 2)"]
  assert report.group_differences(groups) == ["group 2 differs from group 1: train_size 60000 -> 50000"]


def test_reduced_scale_is_stated_in_summary_and_single_group_table(tmp_path):
  runs = [_run("bald", 0, [0.5, 0.7, 0.9])]
  cfg = {**CFG, "train_limit": 3000, "test_limit": 1000}
  summary = reporting.summary_markdown({"config": cfg, "runs": runs})
  assert summary.splitlines()[2] == ("Reduced scale: train_limit=3000, test_limit=1000 (a "
                                     "class-stratified sample).")
  only_train = reporting.summary_markdown({"config": {**cfg, "test_limit": 0}, "runs": runs})
  assert "Reduced scale: train_limit=3000 (a class-stratified sample)." in only_train
  full = reporting.summary_markdown({"config": {**cfg, "train_limit": 0, "test_limit": 0},
                                     "runs": runs})
  assert "Reduced scale" not in full
  d = _write(tmp_path / "r", cfg, runs)
  report.write_report([d], str(tmp_path / "out"), per_class=False)
  table = (tmp_path / "out" / "table.md").read_text()
  title = "fashion_mnist / lenet5 [test_limit=1000, train_limit=3000]"
  assert table.startswith("Reduced scale: train_limit=3000, test_limit=1000 (a class-stratified "
                          "sample).\n\n| experiment |")
  assert f"| {title} | bald | 1 | 30 | 90.00 ± 0.00 |" in table
