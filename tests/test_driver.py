"""Driving a round over rounds and seeds: the splits it starts from (balanced initial and validation
sets), `jaxal.run` (records in the dataset's order, arguments checked before compiling, a resumed
run equal to an uninterrupted one) and `jaxal.run_scanned` (one program, the same run)."""
import copy

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import driver
from jaxal import strategies as st
from jaxal.data import DatasetError, balanced_indices, make_splits
from jaxal.data.synthetic import gaussian_pool
from test_round import _setup  # pylint: disable=wrong-import-order


def blobs(n=300, seed=0):
  return gaussian_pool(n, 4, 8, seed)


@pytest.mark.parametrize("n,c", [(20, 10), (23, 10), (7, 3), (0, 4)])
def test_balanced_indices_are_balanced_distinct_and_respect_exclusions(n, c):
  rng = np.random.default_rng(n)
  labels = rng.integers(0, c, 500)
  exclude = rng.uniform(size=500) < 0.3
  idx = balanced_indices(labels, n, rng, c, exclude=exclude)
  assert len(idx) == n and len(set(idx.tolist())) == n
  assert not exclude[idx].any()
  counts = np.bincount(labels[idx], minlength=c)
  assert counts.max() - counts.min() <= (1 if n % c else 0)
  assert counts.sum() == n


def test_make_splits_val_and_initial_are_disjoint_and_balanced():
  labels = np.repeat(np.arange(5), 40)
  s = make_splits(labels, 5, initial_size=10, val_size=25, seed=3)
  assert not set(s.val.tolist()) & set(s.initial.tolist())
  assert np.bincount(labels[s.val], minlength=5).tolist() == [5] * 5
  assert np.bincount(labels[s.initial], minlength=5).tolist() == [2] * 5
  assert s.selectable.sum() == 200 - 25 and not s.selectable[s.val].any()
  again = make_splits(labels, 5, initial_size=10, val_size=25, seed=3)
  np.testing.assert_array_equal(s.initial, again.initial)


def test_balanced_indices_error_names_the_flag_when_a_class_is_short():
  labels = np.array([0] * 50 + [1] * 3)
  with pytest.raises(DatasetError, match="val_size=10 needs 5 items of class 1 but only 3"):
    balanced_indices(labels, 10, np.random.default_rng(0), 2, what="val_size")


def _without_seconds(records):
  return [{**rec, "rounds": [{k: v for k, v in r.items() if k != "seconds"} for r in rec["rounds"]]}
          for rec in records]


@pytest.mark.slow
def test_selected_indices_are_reported_in_original_training_order():
  round_fn, pool, test, splits, y = _setup(st.random(), rounds=1)
  train_index = np.arange(len(y)) * 10 + 5
  fns = driver.make_round_fns(round_fn)
  a = jaxal.run(round_fn, pool, test, [0], splits[:1], fns=fns)
  b = jaxal.run(round_fn, pool, test, [0], splits[:1], train_index=train_index, fns=fns)
  assert b[0]["rounds"][0]["selected"] == [i * 10 + 5 for i in a[0]["rounds"][0]["selected"]]


def test_run_checks_seeds_and_splits_against_the_budget_before_compiling():
  round_fn, pool, test, splits, y = _setup(st.random(), rounds=2, seeds=(0, 1))
  with pytest.raises(jaxal.ArgumentError, match=r"seeds names a seed twice: \[0, 0\]"):
    jaxal.run(round_fn, pool, test, [0, 0], splits)
  other = make_splits(y, 4, 9, 12, 0)  # 9 initial items, the budget says 8
  with pytest.raises(jaxal.ArgumentError,
                     match=r"splits\[1\]\.initial has 9 items, the budget budget\.initial_size=8"):
    jaxal.run(round_fn, pool, test, [0, 1], [splits[0], other])


@pytest.mark.slow
def test_resumed_run_equals_the_uninterrupted_run():
  """Resuming at round 1 from what `on_state` saw after evaluation 0 (the states and records a
  checkpoint holds) gives the uninterrupted run's records: round keys are fold_in(key, round)."""
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0, 1))
  fns = driver.make_round_fns(round_fn)
  saved = {}

  def on_state(s, states, records):
    saved[s] = (jax.tree.map(jnp.copy, states), copy.deepcopy(records))

  whole = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns, on_state=on_state)
  assert sorted(saved) == [1, 2, 3]
  states, records = saved[1]
  assert np.asarray(states.round).tolist() == [1, 1] and len(records[0]["rounds"]) == 1
  resumed = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns, states=states,
                      records=records)
  assert _without_seconds(resumed) == _without_seconds(whole)
  with pytest.raises(jaxal.ArgumentError, match="resuming at round 1 needs states at round 1"):
    jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns, records=records)


@pytest.mark.parametrize("strategy", [st.entropy(), st.hybrid(n_clusters=3)],
                         ids=lambda s: s.name)
@pytest.mark.slow
def test_scanned_run_equals_the_round_by_round_run(strategy):
  chex.clear_trace_counter()  # the parametrized cases wrap functions with the same footprint
  rounds = 3
  round_fn, pool, test, splits, y = _setup(strategy, rounds=rounds, seeds=(0, 1))
  a = jaxal.run(round_fn, pool, test, [0, 1], splits)
  scanned = driver.make_scanned_fn(round_fn)
  traces = []

  def whole_run(states, pool, test):
    traces.append(1)
    return scanned(states, pool, test)

  fn = jax.jit(chex.assert_max_traces(whole_run, n=1))
  b = jaxal.run_scanned(round_fn, pool, test, [0, 1], splits, fn=fn)
  assert len(traces) == 1  # the program given was used, and traced (compiled) once
  for ra, rb in zip(a, b):
    assert ra["seed"] == rb["seed"]
    assert len(rb["rounds"]) == rounds + 1
    for x, z in zip(ra["rounds"], rb["rounds"]):
      assert (x["round"], x["labels"], x["interactions"], x["selected"]) == \
             (z["round"], z["labels"], z["interactions"], z["selected"])
      np.testing.assert_allclose(x["test_accuracy"], z["test_accuracy"], atol=1e-6)
      np.testing.assert_allclose(x["train_loss"], z["train_loss"], rtol=1e-4)
