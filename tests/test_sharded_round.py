"""Scaling out (issue 18): the round sharded over 8 simulated devices and the pool streamed from the
host select exactly what the one-device, in-memory run selects; bad scale settings stop with one
line naming the flag."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxal import presets, scale
from jaxal.data import load_dataset
from jaxal.data.sources.npy import save_npy_dataset
from jaxal.settings import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, devices=1):
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  return subprocess.run([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def selections(workdir):
  runs = json.loads((workdir / "results.json").read_text())["runs"]
  return {(r["strategy"], r["seed"]): [x["selected"] for x in r["rounds"]] for r in runs}


def accuracies(workdir):
  runs = json.loads((workdir / "results.json").read_text())["runs"]
  return {(r["strategy"], r["seed"]): [x["test_accuracy"] for x in r["rounds"]] for r in runs}


SMALL = ("--uncertainty=mc_dropout", "--mc_samples=3", "--seeds=1", "--rounds=1", "--epochs=2",
         "--initial_size=20", "--query_size=10", "--n_clusters=3", "--test_limit=100",
         "--eval_batch_size=32", "--checkpoint_every=0")


@pytest.mark.slow
def test_mesh_auto_on_eight_devices_selects_what_one_device_selects(tmp_path):
  # 400 items: 50 a device, scored in chunks of 32 (a chunk straddles two devices' shards).
  # top-K over a score of the MC samples (BALD), a k-means-based strategy (hybrid: uncertainty +
  # k-means) and a diversity strategy (core-set).
  args = ("--strategies=bald,hybrid,coreset", "--train_limit=400") + SMALL
  one = run_cli(*args, f"--workdir={tmp_path / 'one'}", devices=1)
  assert one.returncode == 0, one.stderr
  eight = run_cli(*args, f"--workdir={tmp_path / 'eight'}", "--mesh=auto", devices=8)
  assert eight.returncode == 0, eight.stderr
  assert "mesh: {'pool': 8} over 8 devices" in eight.stdout
  ref, got = selections(tmp_path / "one"), selections(tmp_path / "eight")
  assert len(ref) == 3 and all(len(s[0]) == 10 for s in ref.values())
  assert got == ref
  assert accuracies(tmp_path / "eight") == accuracies(tmp_path / "one")


@pytest.mark.slow
def test_mesh_with_a_seeds_axis_selects_what_one_device_selects(tmp_path):
  # --mesh=2x2: the pool split over 2 devices and the 2 seeds over the other axis of 4 devices.
  args = ("--strategies=bald", "--train_limit=200", "--seed_batching=vmap",
          "--seeds=2") + tuple(a for a in SMALL if a != "--seeds=1")
  one = run_cli(*args, f"--workdir={tmp_path / 'one'}", devices=1)
  assert one.returncode == 0, one.stderr
  grid = run_cli(*args, f"--workdir={tmp_path / 'grid'}", "--mesh=2x2", devices=4)
  assert grid.returncode == 0, grid.stderr
  assert "mesh: {'pool': 2, 'seeds': 2} over 4 devices" in grid.stdout, grid.stdout
  ref = selections(tmp_path / "one")
  assert sorted(ref) == [("bald", 0), ("bald", 1)]
  assert ref[("bald", 0)] != ref[("bald", 1)]       # the seeds differ, so the axis matters
  assert selections(tmp_path / "grid") == ref
  assert accuracies(tmp_path / "grid") == accuracies(tmp_path / "one")


@pytest.fixture(scope="module")
def npy_digits(tmp_path_factory):
  ds = load_dataset("digits")
  folder = tmp_path_factory.mktemp("npy")
  save_npy_dataset(str(folder), ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.class_names)
  return folder


def test_npy_source_memory_maps_the_pool_and_names_missing_files(npy_digits, tmp_path):
  ds = load_dataset("npy", npy_digits)
  ref = load_dataset("digits")
  assert isinstance(ds.x_train, np.memmap) and ds.x_train.shape == ref.x_train.shape
  np.testing.assert_array_equal(np.asarray(ds.x_train), ref.x_train)
  np.testing.assert_array_equal(ds.y_test, ref.y_test)
  assert ds.class_names == ref.class_names
  (tmp_path / "train_images.npy").write_bytes((npy_digits / "train_images.npy").read_bytes())
  with pytest.raises(ValueError, match="lacks train_labels.npy, test_images.npy"):
    load_dataset("npy", tmp_path)


def cfg(**overrides):
  c = presets.load("default").to_dict()
  c.update(overrides)
  return c


def test_bad_scale_settings_name_their_flag():
  ds = load_dataset("digits")
  with pytest.raises(ConfigError, match=r"^--mesh='3y': accepted: auto, none"):
    scale.choose(cfg(mesh="3y"), ds, 1, "/nonexistent", log=lambda s: None)
  with pytest.raises(ConfigError, match=r"^--mesh='8' needs 8 devices; 1 are visible"):
    scale.choose(cfg(mesh="8"), ds, 1, "/nonexistent", log=lambda s: None)
  with pytest.raises(ConfigError, match=r"^--pool_on: unknown value 'gpu'; accepted: auto"):
    scale.choose(cfg(pool_on="gpu"), ds, 1, "/nonexistent", log=lambda s: None)
  assert scale.choose(cfg(), ds, 1, "/nonexistent", log=lambda s: None).default


@pytest.mark.slow
def test_pool_on_host_refuses_a_strategy_that_needs_pool_features(npy_digits, tmp_path):
  p = run_cli("--dataset=npy", f"--data_dir={npy_digits}", "--strategies=coreset",
              "--pool_on=host", f"--workdir={tmp_path}")
  assert p.returncode == 1
  line = p.stderr.strip().splitlines()[-1]
  assert line.startswith("error: --pool_on=host streams scores only: strategy 'coreset' needs "
                         "features of the whole pool"), line


@pytest.mark.slow
def test_pool_beyond_a_small_device_budget_streams_and_selects_what_memory_selects(npy_digits,
                                                                                   tmp_path):
  # Top-K over streamed scores (BALD) and a strategy that needs every item's score (power BALD).
  args = ("--dataset=npy", f"--data_dir={npy_digits}", "--strategies=bald,power_bald",
          "--seeds=2", "--rounds=1", "--uncertainty=mc_dropout", "--mc_samples=3", "--epochs=2",
          "--eval_batch_size=64", "--checkpoint_every=0")
  mem = run_cli(*args, "--pool_on=device", f"--workdir={tmp_path / 'mem'}")
  assert mem.returncode == 0, mem.stderr
  # 1347 items x 64 floats = 0.33 MB > a 0.1 MB budget: streamed in blocks of 256 rows.
  host = run_cli(*args, "--device_memory_mb=0.1", "--host_block=300",
                 f"--workdir={tmp_path / 'host'}")
  assert host.returncode == 0, host.stderr
  assert (f"pool on the host: 1347 images (0.00 GiB as float32) streamed from "
          f"{npy_digits / 'train_images.npy'} in blocks of 300") in host.stdout
  ref = selections(tmp_path / "mem")
  assert len(ref) == 4 and all(len(s[0]) == 10 for s in ref.values())
  assert selections(tmp_path / "host") == ref
  assert accuracies(tmp_path / "host") == accuracies(tmp_path / "mem")
