"""Every preset runs end to end at a smoke scale: its model, strategies, uncertainty and options, on
a tiny synthetic dataset of 16x16 images (the data flags and the budget are overridden)."""
import json

import numpy as np
import pytest

from jaxal import presets as configs
from jaxal import experiment

# One strategy per preset keeps the suite short (each strategy is run in the loop by its own
# tests); the one kept exercises the preset's distinctive path (features, clusters, MC samples).
KEEP = {"strategies_fmnist": "batchbald", "hybrid_cifar10": "hybrid",
        "four_metrics_mnist": "largest_margin", "four_metrics_fruits": "margin",
        "cluster_cifar10": "entropy+cluster", "constrained_mnist": "bald",
        "constrained_ideal": "entropy", "gal2017_mnist": "variation_ratios"}


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
  rng = np.random.default_rng(0)
  path = tmp_path_factory.mktemp("d") / "tiny.npz"
  y = np.repeat(np.arange(4), 30)
  x = (rng.random((120, 16, 16, 1)) * 60 + y[:, None, None, None] * 40).astype(np.uint8)
  yt = np.repeat(np.arange(4), 8)
  xt = (rng.random((32, 16, 16, 1)) * 60 + yt[:, None, None, None] * 40).astype(np.uint8)
  np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt)
  return str(path)


# Tested elsewhere: `label` asks a person (tests/test_web.py), the low-budget presets need
# embeddings (tests/test_features.py).
ELSEWHERE = ("default", "label", "lowbudget_cifar10", "lowbudget_fmnist", "lowbudget_mnist")


@pytest.mark.parametrize("name", [n for n in configs.available() if n not in ELSEWHERE])
@pytest.mark.slow
def test_preset_runs_at_smoke_scale(name, tiny_npz, tmp_path):
  cfg = configs.load(name).to_dict()
  cfg.update(dataset="npz", data_dir=tiny_npz, class_map="", classes="", seeds=1, rounds=1,
             epochs=1, initial_size=8, query_size=4, val_size=8, mc_samples=2, pool_subset=0,
             graph_subset=0, n_clusters=2, clusters_per_round=2, cluster_size=20,
             checkpoint_every=0, eval_batch_size=64)
  assert KEEP[name] in experiment.parse_list(cfg["strategies"])   # a strategy of the preset
  cfg["strategies"] = KEEP[name]
  if name.startswith("constrained"):
    cfg["noise"] = "salt_and_pepper"   # the paper's noise path, on 10% of the images
  res = experiment.run_experiment(cfg, str(tmp_path / "w"), log=lambda *_: None)
  names = experiment.parse_list(cfg["strategies"])
  assert [r["strategy"] for r in res["runs"]] == names
  for r in res["runs"]:
    assert len(r["rounds"]) == 2 and r["rounds"][0]["labels"] == 8
    assert 0.0 <= r["rounds"][-1]["test_accuracy"] <= 1.0
  saved = json.loads(open(tmp_path / "w" / "config.json").read())
  assert saved["model"] == configs.load(name).model
