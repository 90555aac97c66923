"""Records the golden results that pin the refactor of issue #16 (run once, on the code before it).

  JAX_PLATFORMS=cpu python tests/golden/record.py

Each case is a small experiment on the embedded digits data run through the command line's library
entry point (`run_experiment` with a flat configuration, the same keys as the flags), so it does not
depend on the Python API that the refactor changes. `tests/test_golden.py` re-runs every case and
requires the same selections and the same floating-point metrics, bit for bit (== after a JSON
round trip), on CPU.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

# name -> settings over the `default` preset.
CASES = {
    "default": dict(rounds=4, epochs=10),
    "bald": dict(strategies="bald,batchbald", uncertainty="mc_dropout", mc_samples=8, rounds=3,
                 epochs=10, seeds=2, batchbald_configs=64),
    "ensemble": dict(strategies="bald,margin", uncertainty="ensemble", ensemble_size=3, rounds=2,
                     epochs=8, seeds=2),
    "hybrid": dict(strategies="hybrid,hybrid_balanced", hybrid_score="margin", alpha=0.5,
                   n_clusters=3, rounds=3, epochs=10, seeds=2),
    "cluster": dict(strategies="cluster,entropy+cluster,cluster+entropy", rounds=3, epochs=10,
                    seeds=2, cluster_size=40, clusters_per_round=4),
    "diversity": dict(strategies="coreset,badge,typiclust,probcover,cluster_margin,kmeans,"
                      "margin_cluster_mean,power_entropy",
                      rounds=2, epochs=8, seeds=2, graph_subset=400),
    "subset_bestval": dict(strategies="entropy,typiclust", pool_subset=300, rounds=3, epochs=9,
                           seeds=2, model_selection="best_val", val_every=3, stop_set=50,
                           stop_agreement=0.999, stop_patience=2),
}

# Fields that depend on the machine's speed.
VOLATILE = ("seconds",)


def config(name: str) -> dict:
  from jaxal import presets as configs  # pylint: disable=import-outside-toplevel
  cfg = configs.load("default").to_dict()
  cfg.update(CASES[name])
  cfg["checkpoint_every"] = 0
  return cfg


def run_case(name: str) -> list[dict]:
  """The case's runs as results.json holds them, without the timing fields."""
  from jaxal import experiment  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as d:
    results = experiment.run_experiment(config(name), d, log=lambda _: None)
  runs = json.loads(json.dumps(results["runs"]))
  for run in runs:
    for rnd in run["rounds"]:
      for key in VOLATILE:
        rnd.pop(key, None)
  return runs


def main() -> None:
  names = sys.argv[1:] or list(CASES)
  for name in names:
    runs = run_case(name)
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
      json.dump({"settings": CASES[name], "runs": runs}, f, indent=1, sort_keys=True)
    print(name, [(r["strategy"], r["seed"], r["rounds"][-1]["test_accuracy"]) for r in runs])


if __name__ == "__main__":
  main()
