"""Stopping rules: the tracker on hand-made sequences, and the loop ending early with the rule named."""
import os

import jax
import numpy as np
import pytest

import jaxal
from jaxal import stopping, strategies
from jaxal.selection.primitives import random_select
from jaxal.state import STOP, STOP_ROUND, round_key
from test_round import _setup as round_setup  # pylint: disable=wrong-import-order


def _setup(strategy, rounds=3, k=7, init=8, seeds=(0, 1), stop_set=0):
  """test_round's small setup (4 Gaussian blobs, an MLP) for the strategy named `strategy`."""
  return round_setup(getattr(strategies, strategy)(), rounds, k, init, seeds, stop_set)


def test_tracker_fires_the_first_rule_per_seed_and_reports_when_all_seeds_fired():
  t = stopping.StopTracker(stopping.StopRules(max_labels=30, agreement=0.75, patience=2), 2)
  p = np.array([[0, 1, 2, 3], [0, 0, 0, 0]])
  assert not t.update(0, np.array([10, 10]), np.array([0, 0]), None, p)       # no previous yet
  p2 = np.array([[0, 1, 2, 0], [1, 1, 1, 1]])                                 # 3/4 vs 0/4 agree
  assert not t.update(1, np.array([20, 20]), np.array([0, 0]), None, p2)      # streak 1 < 2
  assert t.fired == [None, None]
  assert not t.update(2, np.array([30, 25]), np.array([0, 0]), None, p2)     # seed 0: both rules
  assert t.fired[0] == {"rule": "max_labels", "round": 2} and t.fired[1] is None
  assert t.update(3, np.array([40, 28]), np.array([0, 0]), None, p2)         # seed 1: 2 x agree
  assert t.fired[1] == {"rule": "agreement", "round": 3}
  assert t.fired[0]["round"] == 2                                             # the first is kept


def test_rules_check_their_values():
  with pytest.raises(ValueError, match=r"stop.agreement=1.5 must be in \[0, 1\]"):
    stopping.StopRules(agreement=1.5)
  with pytest.raises(ValueError, match="stop.patience=0 must be at least 1"):
    stopping.StopRules(patience=0)
  with pytest.raises(ValueError, match="stop.max_labels=-1 must be >= 0"):
    stopping.StopRules(max_labels=-1)


@pytest.mark.slow
def test_label_budget_ends_the_run_early_with_a_final_training():
  rounds, k, init = 5, 7, 8
  round_fn, pool, test, splits, y = _setup("entropy", rounds, k, init)
  recs = jaxal.run(round_fn, pool, test, [0, 1], splits,
                   stop=stopping.StopRules(max_labels=init + 2 * k))
  for rec in recs:
    assert [r["labels"] for r in rec["rounds"]] == [init, init + k, init + 2 * k]
    assert rec["rounds"][-1]["selected"] == []            # the final evaluation asks nothing
    assert rec["stopped"] == {"rule": "max_labels", "round": 1}
  full = jaxal.run(round_fn, pool, test, [0, 1], splits)
  assert "stopped" not in full[0]
  # Up to the stop, the stopped run is the full run (same keys, same selections).
  assert [r["selected"] for r in full[0]["rounds"][:2]] == [r["selected"] for r in recs[0]["rounds"][:2]]


@pytest.mark.slow
def test_stop_set_uncertainty_is_the_mean_normalised_entropy_of_its_predictions():
  round_fn, pool, test, splits, y = _setup("entropy", 1, stop_set=40)
  state = round_fn.init_state(0, splits[0], y, pool.x)
  state, m = round_fn.train_and_evaluate(state, pool, test)
  idx = np.asarray(random_select(round_key(state.key, STOP_ROUND, STOP), state.selectable, 40))
  assert not set(idx.tolist()) & set(np.asarray(state.val).tolist())
  logits, _ = round_fn.model.apply(state.variables, pool.x[idx])
  p = np.asarray(jax.nn.softmax(logits), np.float64)
  h = -(p * np.log(np.clip(p, 1e-30, None))).sum(-1) / np.log(4)
  np.testing.assert_allclose(float(m["stop_uncertainty"]), h.mean(), rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(m["stop_predictions"]), p.argmax(-1))


@pytest.mark.slow
def test_agreement_and_uncertainty_rules_fire_in_the_loop():
  round_fn, pool, test, splits, y = _setup("margin", 4, stop_set=50)
  # Any agreement >= 0 holds once a previous round exists: fires at round 1.
  recs = jaxal.run(round_fn, pool, test, [0, 1], splits,
                   stop=stopping.StopRules(agreement=1e-9))
  assert all(r["stopped"] == {"rule": "agreement", "round": 1} for r in recs)
  assert all(len(r["rounds"]) == 3 for r in recs)
  # Normalised entropy is below 1 unless predictions are exactly uniform: fires at round 0.
  recs = jaxal.run(round_fn, pool, test, [0], splits[:1],
                   stop=stopping.StopRules(min_uncertainty=1.0))
  assert recs[0]["stopped"] == {"rule": "min_uncertainty", "round": 0}
  no_stop_set, _, _, _, _ = _setup("margin", 2, stop_set=0)
  with pytest.raises(ValueError, match="need a stop set"):
    jaxal.run(no_stop_set, pool, test, [0], splits[:1], stop=stopping.StopRules(agreement=0.9))


@pytest.mark.slow
def test_a_stopped_run_is_complete_for_resumption_and_summarised(tmp_path):
  from jaxal.presets import default
  from jaxal import experiment
  cfg = default.get_config().to_dict()
  cfg.update(strategies="entropy", seeds=2, rounds=6, epochs=2, initial_size=10, query_size=5,
             val_size=20, stop_labels=20)
  out = str(tmp_path / "w")
  res = experiment.run_experiment(cfg, out, log=lambda *_: None)
  assert [r["stopped"] for r in res["runs"]] == [{"rule": "max_labels", "round": 1}] * 2
  assert [len(r["rounds"]) for r in res["runs"]] == [3, 3]
  lines = []
  again = experiment.run_experiment(cfg, out, log=lines.append)
  assert any("already complete" in line for line in lines)
  assert again["runs"] == res["runs"]
  assert "entropy seed 0: max_labels at round 1, 20 labels" in open(f"{out}/summary.md").read()
  bad = {**cfg, "stop_agreement": 0.9}
  with pytest.raises(experiment.ConfigError, match="need a stop set"):
    experiment.run_experiment(bad, str(tmp_path / "x"))


@pytest.mark.slow
def test_a_run_killed_between_the_stop_and_its_final_resumes_to_the_same_results(tmp_path):
  from jaxal.presets import default
  from jaxal import experiment
  cfg = default.get_config().to_dict()
  cfg.update(strategies="margin", seeds=2, rounds=6, epochs=2, initial_size=10, query_size=5,
             val_size=20, stop_labels=20)
  whole = experiment.run_experiment(cfg, str(tmp_path / "a"), log=lambda *_: None)

  class Killed(Exception):
    pass

  def die_after_the_stop(line):   # progress of round 1 is logged after its checkpoint is written
    if "round   1/6" in line:
      raise Killed()

  with pytest.raises(Killed):
    experiment.run_experiment(cfg, str(tmp_path / "b"), log=die_after_the_stop)
  lines = []
  resumed = experiment.run_experiment(cfg, str(tmp_path / "b"), log=lines.append)
  assert any("resuming from checkpoint step 2" in line for line in lines)
  strip = lambda runs: [{**r, "rounds": [{k: v for k, v in row.items() if k != "seconds"}
                                         for row in r["rounds"]]} for r in runs]
  assert strip(resumed["runs"]) == strip(whole["runs"])
  # The finished, stopped run restores as complete from its checkpoint too (no results.json).
  os.remove(tmp_path / "b" / "results.json")
  lines = []
  experiment.run_experiment(cfg, str(tmp_path / "b"), log=lines.append)
  assert any("complete in checkpoint" in line for line in lines)
  assert not any("damaged" in line for line in lines)
