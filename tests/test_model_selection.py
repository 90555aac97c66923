"""Model selection on the labeled validation set (`TrainConfig.model_selection="best_val"`) and early
stopping, against a reference that trains 1, 2, ... E epochs separately (the epoch keys are
`fold_in(key, e)`, so the first k epochs of a longer run are exactly a k-epoch run), evaluates each
on the validation set with numpy and picks the best by hand."""
import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxal import presets as configs
from jaxal import experiment, models, training
from jaxal.data.synthetic import gaussian_pool
from jaxal.state import TrainConfig

EPOCHS = 12


def problem(seed=0):
  x, y = gaussian_pool(300, 3, 6, seed, scale=1.2)   # overlapping blobs: validation accuracy moves
  labeled = np.zeros(240, bool)
  labeled[:24] = True
  return x[:240], y[:240], labeled, x[240:], y[240:]


def setup(cfg):
  model = models.get_model("mlp", 3, hidden=(16,))
  tx = training.make_optimizer(cfg)
  x, y, labeled, vx, vy = problem()
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  return model, tx, v, x, y, labeled, vx, vy


def reference_scores(cfg):
  """(val accuracy, val cross-entropy, variables) after each of epochs 1..E, from E separate
  `last` runs, computed in numpy."""
  model, tx, v, x, y, labeled, vx, vy = setup(cfg)
  out = []
  for e in range(1, cfg.epochs + 1):
    c = dataclasses.replace(cfg, epochs=e, model_selection="last", early_stopping=0)
    ve, _, _ = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                            labeled, c, capacity=40)
    logits = np.asarray(model.apply(ve, vx, train=False)[0], np.float64)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    out.append((np.mean(logits.argmax(-1) == vy), -np.mean(logp[np.arange(len(vy)), vy]), ve))
  return out


def pick(scores, every, patience, epochs):
  """The hand-written rule: evaluate at multiples of `every` and at the last epoch; better = higher
  accuracy, ties to lower loss; stop after `patience` evaluations without a better one."""
  best, since = None, 0
  for e in range(1, epochs + 1):
    if e % every and e != epochs:
      continue
    acc, ce, _ = scores[e - 1]
    if best is None or acc > best[1] or (acc == best[1] and ce < best[2]):
      best, since = (e, acc, ce), 0
    else:
      since += 1
    if patience and since >= patience:
      return best[0], e
  return best[0], epochs


@pytest.fixture(scope="module")
def scores():
  return reference_scores(TrainConfig(epochs=EPOCHS, batch_size=8, learning_rate=3e-2))


@pytest.mark.parametrize("every,patience", [(1, 0), (5, 0), (1, 1), (2, 1), (1, 3)])
@pytest.mark.slow
def test_best_val_keeps_the_epoch_a_numpy_reference_picks(scores, every, patience):
  cfg = TrainConfig(epochs=EPOCHS, batch_size=8, learning_rate=3e-2, model_selection="best_val",
                    val_every=every, early_stopping=patience)
  model, tx, v, x, y, labeled, vx, vy = setup(cfg)
  got, _, _, info = jax.jit(lambda v: training.fit(
      model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y, labeled, cfg, capacity=40,
      val_x=vx, val_y=vy, return_info=True))(v)
  want_epoch, want_run = pick(scores, every, patience, EPOCHS)
  assert int(info["best_epoch"]) == want_epoch
  assert int(info["epochs_run"]) == want_run
  assert float(info["best_val_accuracy"]) == pytest.approx(scores[want_epoch - 1][0])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got,
               scores[want_epoch - 1][2])


@pytest.mark.slow
def test_reference_is_not_trivial(scores):
  """The validation curve must move, the best epoch must not be the last, and the tie rule (lower
  loss among equal accuracies) must decide it, or the selection tests could not fail."""
  accs = [s[0] for s in scores]
  assert len(set(accs)) > 2
  best = pick(scores, 1, 0, EPOCHS)[0]
  assert best < EPOCHS
  assert accs.index(max(accs)) + 1 != best          # the first epoch at the top accuracy lost


@pytest.mark.parametrize("every,patience", [(1, 0), (2, 1)])
@pytest.mark.slow
def test_each_vmapped_member_keeps_its_own_best_epoch(every, patience):
  cfg = TrainConfig(epochs=8, batch_size=8, learning_rate=5e-2, model_selection="best_val",
                    val_every=every, early_stopping=patience)
  model, tx, v, x, y, labeled, vx, vy = setup(cfg)
  keys = jax.random.split(jax.random.PRNGKey(4), 3)
  run = lambda k: training.fit(model, tx, v, tx.init(v["params"]), k, x, y, labeled, cfg,
                               capacity=40, val_x=vx, val_y=vy, return_info=True)
  together = jax.jit(jax.vmap(run))(keys)
  for i, k in enumerate(keys):
    alone = jax.jit(run)(k)
    assert int(together[3]["best_epoch"][i]) == int(alone[3]["best_epoch"])
    assert int(together[3]["epochs_run"][i]) == int(alone[3]["epochs_run"])
    jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6),
                 together[0], alone[0])


@pytest.mark.slow
def test_batch_norm_statistics_travel_with_the_kept_epoch():
  """cnn2_bn: the kept variables (params and batch_stats) are those of a run of best_epoch epochs."""
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(3), 30).astype(np.int32)
  x = (rng.normal(size=(90, 8, 8, 1)) + y[:, None, None, None]).astype(np.float32)
  labeled = np.zeros(90, bool)
  labeled[::3] = True
  vx, vy = x[1::3], y[1::3]
  model = models.get_model("cnn2_bn", 3)
  cfg = TrainConfig(epochs=6, batch_size=8, learning_rate=1e-2, model_selection="best_val")
  tx = training.make_optimizer(cfg)
  v = training.init_variables(model, jax.random.PRNGKey(0), x)
  assert "batch_stats" in v
  run = lambda c: training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                               labeled, c, capacity=40, val_x=vx, val_y=vy, return_info=True)
  got, _, _, info = run(cfg)
  best = int(info["best_epoch"])
  want, _, _ = run(dataclasses.replace(cfg, epochs=best, model_selection="last"))[:3]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), got, want)


@pytest.mark.slow
def test_ensemble_members_report_their_mean_epoch(tmp_path):
  res = experiment.run_experiment(
      small(model_selection="best_val", uncertainty="ensemble", ensemble_size=3, seeds=1,
            strategies="bald", epochs=8, early_stopping=1), str(tmp_path / "w"),
      log=lambda m: None)
  for r in res["runs"][0]["rounds"]:
    assert 1 <= r["best_epoch"] <= r["epochs_run"] <= 8
    assert isinstance(r["best_epoch"], (int, float))


def test_last_is_the_default_and_reports_every_epoch():
  cfg = TrainConfig(epochs=3, batch_size=8)
  model, tx, v, x, y, labeled, _, _ = setup(cfg)
  _, _, _, info = training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y,
                               labeled, cfg, capacity=40, return_info=True)
  assert int(info["best_epoch"]) == 3 and int(info["epochs_run"]) == 3
  assert np.isnan(float(info["best_val_accuracy"]))


def test_fit_refuses_best_val_without_a_validation_set():
  cfg = TrainConfig(epochs=2, batch_size=8, model_selection="best_val")
  model, tx, v, x, y, labeled, _, _ = setup(cfg)
  with pytest.raises(ValueError, match=r"train.model_selection=best_val needs a labeled "
                     "validation set: pass val_x and val_y"):
    training.fit(model, tx, v, tx.init(v["params"]), jax.random.PRNGKey(1), x, y, labeled, cfg,
                 capacity=40)


@pytest.mark.parametrize("kw,needle", [
    ({"model_selection": "best"}, "train.model_selection: unknown value 'best'; accepted: last, "
     "best_val"),
    ({"early_stopping": 2}, "train.early_stopping=2 needs train.model_selection=best_val"),
])
def test_train_config_refuses_bad_selection_settings(kw, needle):
  with pytest.raises(ValueError, match=needle):
    TrainConfig(epochs=2, batch_size=8, **kw)


def small(**overrides):
  c = configs.load("default").to_dict()
  c.update(strategies="random,entropy", seeds=2, rounds=2, epochs=6, initial_size=20,
           query_size=10, val_size=40, checkpoint_every=0)
  c.update(overrides)
  return c


@pytest.mark.parametrize("overrides,needle", [
    ({"model_selection": "best", "val_size": 40}, "--model_selection: unknown value 'best'"),
    ({"model_selection": "best_val", "val_size": 0}, "--val_size > 0"),
    ({"early_stopping": 3}, "--early_stopping=3 needs --model_selection=best_val"),
    ({"model_selection": "best_val", "val_every": 0}, "--val_every must be an integer >= 1"),
    ({"val_every": 5}, "--val_every=5 needs --model_selection=best_val"),
])
def test_cli_settings_are_checked(tmp_path, overrides, needle):
  with pytest.raises(experiment.ConfigError, match=needle):
    experiment.run_experiment(small(**overrides), str(tmp_path / "w"), log=lambda m: None)


@pytest.mark.slow
def test_run_records_the_kept_epoch_and_validation_apart_from_test(tmp_path):
  res = experiment.run_experiment(small(model_selection="best_val", early_stopping=2),
                                  str(tmp_path / "w"), log=lambda m: None)
  saved = json.loads((tmp_path / "w" / "results.json").read_text())
  assert saved["config"]["model_selection"] == "best_val"
  rounds = [r for run in res["runs"] for r in run["rounds"]]
  assert len(rounds) == 2 * 2 * 3
  for r in rounds:
    assert 1 <= r["best_epoch"] <= r["epochs_run"] <= 6
    assert 0 <= r["val_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1
  # Early stopping after 2 evaluations: a run stops at best_epoch + 2 unless it reached epoch 6.
  assert all(r["epochs_run"] == min(6, r["best_epoch"] + 2) for r in rounds)
