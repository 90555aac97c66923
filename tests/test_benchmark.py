"""The benchmark entry point at smoke scale: each workload runs, reports and writes its JSON. No timing
is asserted (speed is measured by running the benchmark, not by tests)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(*args):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run([sys.executable, "-m", "experiments.benchmark", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_unknown_workload_names_the_accepted_ones():
  p = bench("fastest")
  assert p.returncode != 0
  assert ("accepted: fmnist-bald, train-throughput, train-parity, score-throughput, seeds, kmeans, "
          "pool-scale, strategy-memory"
          in p.stderr)


@pytest.mark.slow
def test_a_wrong_torch_json_is_one_line_before_anything_runs(tmp_path):
  other = tmp_path / "other.json"
  other.write_text(json.dumps({"workload": "kmeans", "runs": []}))
  broken = tmp_path / "broken.json"
  broken.write_text("{not json")
  for path, says in ((other, "holds workload 'kmeans'; accepted: the output of torch_reference.py"),
                     (broken, "cannot be read as JSON"),
                     (tmp_path / "missing.json", "cannot be read as JSON")):
    p = bench("fmnist-bald", f"--torch_json={path}", "--repeats=1", "--rounds=1")
    assert p.returncode != 0
    assert p.stderr.strip().splitlines()[-1].startswith(f"error: --torch_json='{path}'")
    assert says in p.stderr
    assert "jaxal seed" not in p.stdout          # refused before the jaxal runs


def test_kmeans_workload_compares_with_scikit_learn(tmp_path):
  out = tmp_path / "k.json"
  p = bench("kmeans", "--kmeans_n=600", "--kmeans_d=4", "--kmeans_k=5", "--repeats=2",
            f"--out={out}")
  assert p.returncode == 0, p.stderr
  res = json.loads(out.read_text())
  assert len(res["jaxal"]["runs"]) == 2 and len(res["sklearn"]["runs"]) == 2
  # Same data and k: jaxal's inertia is close to scikit-learn's (k-means++ on separated blobs).
  assert 0.8 < res["inertia_ratio_jaxal_over_sklearn"] < 1.25
  assert "sklearn / jaxal time" in p.stdout


@pytest.mark.slow
def test_fmnist_bald_workload_runs_the_protocol_and_its_phases_agree():
  root = os.environ.get("JAXAL_SHARED_DATA")
  if not root or not os.path.isdir(os.path.join(root, "fashion_mnist")):
    pytest.skip("JAXAL_SHARED_DATA with fashion_mnist is not set")
  out = os.path.join(ROOT, ".pytest_cache", "fmnist_bald_smoke.json")
  os.makedirs(os.path.dirname(out), exist_ok=True)
  p = bench("fmnist-bald", f"--data_dir={os.path.join(root, 'fashion_mnist')}", "--rounds=2",
            "--epochs=1", "--repeats=1", "--mc_samples=2", "--train_limit=6000", "--noscan",
            "--whole_command", f"--out={out}")
  assert p.returncode == 0, p.stderr
  res = json.loads(open(out).read())
  run = res["jaxal"]["runs"][0]
  assert len(run["round_seconds"]) == 3 and len(run["accuracy_curve"][0]) == 3
  # The separately compiled phases pick exactly what the fused production round picks, and so does
  # the command line run with the protocol's flags (cold and warm compilation cache).
  # (The whole run as one lax.scan program is compared in tests/test_driver.py.)
  assert res["jaxal"]["phased_selects_as_fused"] is True
  assert [len(s) for s in run["selected"][0]] == [10, 10, 0]
  whole = res["jaxal"]["whole_command"]
  assert whole["selects_as_fused"] is True
  assert whole["warm"]["first_round_seconds"] < whole["cold"]["first_round_seconds"]
  assert whole["cold"]["final_accuracy"] == run["final_accuracy"]
  # The roofline: the machine's limits are measured, and every phase has its row.
  roof = res["roofline"]
  assert roof["peak_gflops"] > 0 and roof["bandwidth"]["best"] > 0
  assert [r["phase"] for r in roof["phases"]] == ["train", "score", "evaluate", "select"]
  assert all(r["gflop"] > 0 and r["bound"] in ("compute", "memory", "neither")
             for r in roof["phases"][:3])
  assert "roofline: matmul peak" in p.stdout and "| score |" in p.stdout


def test_parity_sets_are_balanced_nested_and_the_seeds_own():
  from jaxal.cli.benchmarks.train_parity import parity_sets
  y = np.repeat(np.arange(10), 30)[np.random.default_rng(5).permutation(300)]
  sets = parity_sets(y, [190, 200], [0, 1])
  assert sorted(sets) == ["190_0", "190_1", "200_0", "200_1"]
  for s in (0, 1):
    big = sets[f"200_{s}"]
    assert len(set(big.tolist())) == 200
    np.testing.assert_array_equal(np.bincount(y[big], minlength=10), np.full(10, 20))
    np.testing.assert_array_equal(sets[f"190_{s}"], big[:190])    # each size a prefix
  assert not np.array_equal(sets["200_0"], sets["200_1"])
  again = parity_sets(y, [200], [1])
  np.testing.assert_array_equal(again["200_1"], sets["200_1"])   # the seed alone decides
  with pytest.raises(SystemExit, match="must be a multiple of 10"):
    parity_sets(y, [195], [0])
  with pytest.raises(SystemExit, match=r"needs 40 images of every class; class 0 has 30"):
    parity_sets(y, [400], [0])


@pytest.mark.slow
def test_train_parity_workload_trains_every_set_and_reports_it(tmp_path):
  root = os.environ.get("JAXAL_SHARED_DATA")
  if not root or not os.path.isdir(os.path.join(root, "fashion_mnist")):
    pytest.skip("JAXAL_SHARED_DATA with fashion_mnist is not set")
  out = tmp_path / "t.json"
  p = bench("train-parity", f"--data_dir={os.path.join(root, 'fashion_mnist')}",
            "--parity_sizes=10,20", "--epochs=2", "--repeats=2", "--train_limit=600",
            f"--out={out}")
  assert p.returncode == 0, p.stderr
  res = json.loads(out.read_text())
  assert [r["labels"] for r in res["results"]] == [10, 20]
  for r in res["results"]:
    assert len(r["jaxal"]) == 2 and all(0.0 <= a <= 1.0 for a in r["jaxal"])
    assert r["jaxal_mean_se"][0] == pytest.approx(np.mean(r["jaxal"]))
  assert res["torch"] is None and "| labels | jaxal" in p.stdout
  p = bench("train-parity", "--parity_sizes=0", f"--out={out}")
  assert p.returncode != 0 and "error: --parity_sizes='0'" in p.stderr


@pytest.mark.slow
def test_pool_scale_runs_the_loop_on_a_host_pool_and_selects_what_the_in_memory_run_selects(
    tmp_path):
  out = tmp_path / "p.json"
  p = bench("pool-scale", "--pool_sizes=2000", "--pool_mode=both", "--mc_samples=3",
            "--scale_rounds=2", "--epochs=2", "--stream_chunk=512", "--chunk=256", f"--out={out}")
  assert p.returncode == 0, p.stderr
  rows = json.loads(out.read_text())["results"]
  assert [(r["pool_size"], r["pool_on"]) for r in rows] == [(2000, "host"), (2000, "device")]
  assert rows[0]["selected"] == rows[1]["selected"]
  assert [len(s) for s in rows[0]["selected"]] == [10, 10, 0]
  assert all(0 <= i < 2000 for s in rows[0]["selected"] for i in s)
  assert all(r["peak_rss_mb"] > 0 and r["images_per_second"] > 0 for r in rows)
