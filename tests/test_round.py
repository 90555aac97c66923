"""One round as a value (`jaxal.make_round`): K labels per round without repeats, one compilation
across rounds, the top-K rule against an independent reference, `tell`, seeds (same seed same run,
seeds independent of each other, vmap and map over seeds the same run) and a compiled round that
moves nothing from the host once its inputs are on the device."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import driver, models
from jaxal import strategies as st
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool
from jaxal.round import over_seeds


def blobs(n=300, seed=0):
  return gaussian_pool(n, 4, 8, seed)


def _setup(strategy, rounds=3, k=7, init=8, seeds=(0, 1), stop_set=0):
  x, y = blobs()
  xt, yt = blobs(100, seed=0)
  pool = jaxal.LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = jaxal.LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = models.get_model("mlp", 4, hidden=(16,))
  tc = jaxal.TrainConfig(epochs=3, batch_size=8)
  # capacity is derived: init + rounds * k, what the old tests set by hand.
  round_fn = jaxal.make_round(model, jaxal.make_optimizer(tc), strategy,
                              budget=jaxal.Budget(initial_size=init, query_size=k, rounds=rounds),
                              train=tc, num_classes=4, stop_set=stop_set)
  splits = [make_splits(y, 4, init, 12, s) for s in seeds]
  return round_fn, pool, test, splits, y


def _counted_fns(round_fn, traces):
  """(step, final) as `driver.make_round_fns` builds them, each jitted around
  `chex.assert_max_traces(n=1)` and appending its name to `traces` whenever it is traced."""
  lifted_round = over_seeds(round_fn)
  lifted_final = over_seeds(round_fn.train_and_evaluate)

  def step(states, pool, test):
    traces.append("step")
    return lifted_round(states, pool, test)

  def final(states, pool, test):
    traces.append("final")
    return lifted_final(states, pool, test)

  return (jax.jit(chex.assert_max_traces(step, n=1)),
          jax.jit(chex.assert_max_traces(final, n=1)))


def _selected(records):
  return [[r["selected"] for r in rec["rounds"]] for rec in records]


@pytest.mark.parametrize("strategy", [st.random(), st.entropy(), st.margin()],
                         ids=lambda s: s.name)
@pytest.mark.slow
def test_round_fn_compiles_once_and_labels_grow_by_k_without_repeats(strategy):
  chex.clear_trace_counter()  # the parametrized cases wrap functions with the same footprint
  rounds, k, init = 4, 7, 8
  round_fn, pool, test, splits, y = _setup(strategy, rounds, k, init)
  traces = []
  fns = _counted_fns(round_fn, traces)
  recs = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns)
  # One trace (so one compilation) of the round for all 4 rounds (labeled counts 8, 15, 22, 29),
  # and the final training once; chex raises on a second trace, `traces` shows the fns were used.
  assert sorted(traces) == ["final", "step"]
  for rec, sp in zip(recs, splits):
    assert [r["labels"] for r in rec["rounds"]] == [init + i * k for i in range(rounds + 1)]
    assert [r["interactions"] for r in rec["rounds"]] == [i * k for i in range(rounds + 1)]
    chosen = [i for r in rec["rounds"] for i in r["selected"]]
    assert len(chosen) == rounds * k == len(set(chosen))
    assert not set(chosen) & set(sp.initial.tolist())
    assert not set(chosen) & set(sp.val.tolist())
    assert rec["rounds"][-1]["selected"] == []


@pytest.mark.slow
def test_top_k_strategy_selects_the_most_uncertain_unlabeled_items():
  round_fn, pool, test, splits, y = _setup(st.least_confidence(), rounds=1)
  state = round_fn.init_state(0, splits[0], y, pool.x)
  state, _ = round_fn.train_and_evaluate(state, pool, test)
  idx = np.asarray(round_fn.ask(state, pool))
  logits, _ = round_fn.model.apply(state.variables, pool.x)
  lc = 1 - np.array(jax.nn.softmax(logits)).max(-1)
  lc[np.asarray(state.labeled) | ~np.asarray(state.selectable)] = -np.inf
  np.testing.assert_array_equal(np.sort(idx),
                                np.sort(np.argsort(-lc)[:round_fn.budget.query_size]))


def test_tell_writes_labels_even_wrong_ones_and_counts_interactions():
  round_fn, pool, test, splits, y = _setup(st.random())
  state = round_fn.init_state(0, splits[0], y, pool.x)
  unl = np.flatnonzero(~np.asarray(state.labeled) & np.asarray(state.selectable))[:3]
  wrong = (y[unl] + 1) % 4
  new = jaxal.tell(state, jnp.asarray(unl), jnp.asarray(wrong))
  assert np.asarray(new.labels)[unl].tolist() == wrong.tolist()
  assert int(new.num_labeled) == int(state.num_labeled) + 3
  assert int(new.interactions) == 3 and int(new.round) == 1
  once = jaxal.tell(state, jnp.asarray(unl), jnp.asarray(wrong), interactions=1)
  assert int(once.interactions) == 1


def test_same_seed_same_selections_different_seed_different():
  # `jaxal.run` refuses a seed named twice (tests/test_driver.py), so the three slots of one batched
  # program (seeds 0, 0, 1) are driven here with the driver's own compiled round.
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0, 0, 1))
  step, _ = driver.make_round_fns(round_fn)
  states = round_fn.init_states([0, 0, 1], splits, pool)
  sel = []
  for _ in range(2):
    states, metrics = step(states, pool, test)
    sel.append(np.asarray(metrics["selected"]).tolist())
  sel = [[s[i] for s in sel] for i in range(3)]  # per slot
  assert sel[0] == sel[1]
  assert sel[0] != sel[2]


@pytest.mark.slow
def test_vmapped_seeds_equal_seeds_run_one_at_a_time():
  round_fn, pool, test, splits, y = _setup(st.margin(), rounds=2, seeds=(0, 1))
  together = jaxal.run(round_fn, pool, test, [0, 1], splits)
  alone = jaxal.run(round_fn, pool, test, [1], splits[1:])
  assert _selected(together)[1] == _selected(alone)[0]
  np.testing.assert_allclose([r["test_accuracy"] for r in together[1]["rounds"]],
                             [r["test_accuracy"] for r in alone[0]["rounds"]], atol=1e-6)


def _floats(values):
  return np.array([np.nan if v is None else v for v in values], np.float64)


@pytest.mark.slow
def test_vmap_and_map_over_seeds_give_the_same_run():
  """On CPU the two batchings give the same records: selections, labels, interactions and the test
  and validation accuracies are equal (==; the same predictions, counted the same way). The other
  float metrics (train loss, ECE, per-class accuracy) are allclose with rtol=1e-6, a few float32
  ulps: vmap compiles the batched reductions and divisions into different XLA kernels than map's
  one-seed loop, which moves their last bit (observed: 1 ulp)."""
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0, 1))
  a = jaxal.run(round_fn, pool, test, [0, 1], splits, seed_batching="vmap")
  b = jaxal.run(round_fn, pool, test, [0, 1], splits, seed_batching="map")
  assert _selected(a) == _selected(b)
  for ra, rb in zip(a, b):
    assert ra["seed"] == rb["seed"] and len(ra["rounds"]) == len(rb["rounds"]) == 3
    for x, z in zip(ra["rounds"], rb["rounds"]):
      assert x.keys() == z.keys()
      exact = ("round", "labels", "interactions", "selected", "test_accuracy", "val_accuracy",
               "best_epoch", "epochs_run")
      assert {key: x[key] for key in exact} == {key: z[key] for key in exact}
      for key in ("train_loss", "test_ece"):
        np.testing.assert_allclose(x[key], z[key], rtol=1e-6, atol=0, err_msg=key)
      np.testing.assert_allclose(_floats(x["per_class_accuracy"]),
                                 _floats(z["per_class_accuracy"]), rtol=1e-6, atol=0)
      assert set(x) - set(exact) == {"train_loss", "test_ece", "per_class_accuracy", "seconds"}
  with pytest.raises(ValueError, match="seed_batching: unknown value 'pmap'"):
    jaxal.run(round_fn, pool, test, [0], splits[:1], seed_batching="pmap")


def test_compiled_round_moves_nothing_from_the_host_once_its_inputs_are_on_the_device():
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0,))
  state = round_fn.init_state(0, splits[0], y, pool.x)
  state, pool, test = jax.device_put((state, pool, test))
  host_x = np.asarray(pool.x)
  step = jax.jit(round_fn)
  with jax.transfer_guard("disallow"):
    for _ in range(2):  # compiles, then runs again on its own output
      state, metrics = step(state, pool, test)
    jax.block_until_ready((state, metrics))
    # The guard is on: the same round given a host array is refused.
    with pytest.raises(Exception, match="Disallowed host-to-device transfer"):
      step(state, jaxal.LabeledArrays(host_x, pool.y), test)
  assert int(state.round) == 2 and int(state.num_labeled) == 8 + 2 * 7
  assert len(set(np.asarray(metrics["selected"]).tolist())) == 7


@pytest.mark.parametrize("name,shape,members", [("lenet5", (12, 12, 1), 0), ("mlp", (8, 8, 1), 2)])
def test_initial_state_is_compiled_once_and_equals_the_op_by_op_initialisation(name, shape,
                                                                                members):
  # init_state runs init_model as one compiled program (start-up time, issue 21); the values
  # are those of running it op by op, bit for bit.
  from jaxal.round import init_model
  from jaxal.state import INIT, round_key
  model = models.get_model(name, 3)
  tx = jaxal.training.make_optimizer(jaxal.TrainConfig(optimizer="adam"))
  uncertainty = jaxal.Uncertainty("ensemble", ensemble_size=members) if members else None
  r = jaxal.make_round(model, tx, st.entropy(), budget=jaxal.Budget(4, 2, 1),
                       **({"uncertainty": uncertainty} if uncertainty else {}))
  x = np.ones((12,) + shape, np.float32)
  y = np.arange(12) % 3
  state = r.init_state(5, make_splits(y, 3, 3, 0, 5), y, jnp.asarray(x))
  want = init_model(model, tx, round_key(jax.random.PRNGKey(5), 0, INIT), jnp.asarray(x[:1]),
                    members)
  for a, b in zip(jax.tree.leaves((state.variables, state.opt_state)), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
