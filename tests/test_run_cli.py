"""The entry point: results directory contents, and bad flags stopping with one clear line."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, cwd=None):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=cwd or ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_small_run_writes_the_results_directory(tmp_path):
  out = tmp_path / "w"
  p = run_cli("--strategies=random,entropy", "--seeds=2", "--rounds=2", "--epochs=2",
              "--classes=0,1,2", "--initial_size=6", "--query_size=4", "--val_size=9",
              f"--workdir={out}")
  assert p.returncode == 0, p.stderr
  assert "[entropy] round   2/2" in p.stdout
  for name in ("config.json", "results.json", "curves.png", "summary.md"):
    assert (out / name).exists(), name
  res = json.loads((out / "results.json").read_text())
  assert res["config"]["classes"] == "0,1,2" and res["config"]["num_classes"] == 3
  assert [(r["strategy"], r["seed"]) for r in res["runs"]] == [
      ("random", 0), ("random", 1), ("entropy", 0), ("entropy", 1)]
  rounds = res["runs"][0]["rounds"]
  assert [r["labels"] for r in rounds] == [6, 10, 14]
  keys = {"round", "labels", "interactions", "test_accuracy", "per_class_accuracy", "selected",
          "seconds"}
  assert keys <= set(rounds[0])
  assert len(rounds[0]["per_class_accuracy"]) == 3 and len(rounds[0]["selected"]) == 4
  assert "| entropy | 2 |" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_bayesian_flags_run_end_to_end(tmp_path):
  out = tmp_path / "b"
  p = run_cli("--strategies=bald,variation_ratios", "--uncertainty=mc_dropout", "--mc_samples=4",
              "--seeds=1", "--rounds=1", "--epochs=1", "--pool_subset=200", f"--workdir={out}")
  assert p.returncode == 0, p.stderr
  res = json.loads((out / "results.json").read_text())
  assert res["config"]["uncertainty"] == "mc_dropout"
  assert [r["strategy"] for r in res["runs"]] == ["bald", "variation_ratios"]


@pytest.mark.parametrize("args,message", [
    (["--dataset=cifar"], "--dataset: unknown dataset 'cifar'; accepted: digits, idx, folder, npz, npy, unlabeled, tfds:<name>"),
    (["--model=vgg"], "--model: unknown model 'vgg'; accepted: mlp, lenet5, cnn3"),
    (["--strategies=random,kcenter"], "--strategies: unknown strategy 'kcenter'; accepted: random"),
    (["--initial_size=5000"], "--initial_size=5000 is larger than the pool"),
    (["--query_size=500"], "exceeds the pool"),
    (["--classes=0,12"], "--classes:"),
    (["--optimizer=rmsprop"], "--optimizer: unknown optimizer 'rmsprop'; accepted: sgd, adam"),
    (["--preset=nope"], "--preset: unknown preset 'nope'; accepted: cluster_cifar10, "
                         "constrained_ideal, constrained_mnist, default, four_metrics_fruits"),
    (["--strategies=bald"], "--strategies=bald needs several predictive samples"),
    (["--uncertainty=bayes"], "--uncertainty: unknown method 'bayes'; accepted: deterministic, mc_dropout, ensemble"),
    (["--seeds=0"], "--seeds must be an integer >= 1, got 0"),
    (["--strategies=entropy", "--pool_subset=5"], "--pool_subset=5 must be between --query_size=10"),
    (["--dataset=idx"], "--data_dir is required with --dataset=idx"),
    (["--dataset=idx", "--data_dir=/nonexistent/mnist"], "/nonexistent/mnist"),
])
@pytest.mark.slow
def test_bad_flags_stop_with_one_clear_line(args, message, tmp_path):
  p = run_cli(*args, f"--workdir={tmp_path / 'w'}")
  assert p.returncode != 0
  lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1, p.stderr
  assert lines[0].startswith("error: ") and message in lines[0], lines[0]
