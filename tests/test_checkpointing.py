"""Checkpoints and resumption: a killed run (a real process, SIGKILL) resumes to the results of an
uninterrupted one; a damaged newest checkpoint falls back to the previous one; a half-written step
is never seen; a changed setting is refused."""
import json
import os
import shutil
import signal
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import jaxal
from jaxal import checkpointing, experiment, models, strategies, training
from jaxal.data import make_splits
from jaxal.data.synthetic import gaussian_pool
from jaxal.driver import make_round_fns
from jaxal.state import Budget, LabeledArrays, TrainConfig
from jaxal.workdir import config_differences

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_ARGS = ("--rounds=4", "--epochs=2", "--seeds=2", "--strategies=random,entropy")


def cli(*args, **kw):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
  return subprocess.Popen([sys.executable, "-m", "experiments.run", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def assert_same_results(got, want):
  """Selected indices and labels exactly equal, accuracies within 1e-6, per strategy and seed."""
  assert [(r["strategy"], r["seed"]) for r in got["runs"]] == [
      (r["strategy"], r["seed"]) for r in want["runs"]]
  for g, w in zip(got["runs"], want["runs"]):
    assert len(g["rounds"]) == len(w["rounds"])
    for a, b in zip(g["rounds"], w["rounds"]):
      where = (g["strategy"], g["seed"], a["round"])
      assert a["round"] == b["round"] and a["labels"] == b["labels"], where
      assert a["selected"] == b["selected"], where
      assert a["interactions"] == b["interactions"], where
      for key in ("test_accuracy", "val_accuracy"):
        assert abs(a[key] - b[key]) <= 1e-6, (where, key, a[key], b[key])
      np.testing.assert_allclose(np.array(a["per_class_accuracy"], float),
                                 np.array(b["per_class_accuracy"], float), atol=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  """Starts the uninterrupted reference run in the background (the killed run goes meanwhile)."""
  out = tmp_path_factory.mktemp("uninterrupted")
  proc = cli(*CLI_ARGS, f"--workdir={out}")
  def result():
    if proc.returncode is None:
      _, stderr = proc.communicate(timeout=300)
      assert proc.returncode == 0, stderr
    assert proc.returncode == 0
    return out, json.loads((out / "results.json").read_text())
  yield result
  if proc.poll() is None:
    proc.kill()
    proc.wait()


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_results_of_an_uninterrupted_run(tmp_path, uninterrupted):
  work = tmp_path / "killed"
  proc = cli(*CLI_ARGS, f"--workdir={work}")
  seen = []
  for line in proc.stdout:
    seen.append(line)
    if line.startswith("[entropy] round   2/4"):
      proc.send_signal(signal.SIGKILL)
      break
  proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "".join(seen) + proc.stderr.read()
  partial = json.loads((work / "results.json").read_text())
  assert {r["strategy"] for r in partial["runs"]} == {"random"}  # entropy was in flight

  resumed = cli(*CLI_ARGS, f"--workdir={work}")
  stdout, stderr = resumed.communicate(timeout=300)
  assert resumed.returncode == 0, stderr
  assert "[random] already complete" in stdout and "[random] round" not in stdout
  step = int(stdout.split("[entropy] resuming from checkpoint step ")[1].split()[0])
  assert 3 <= step <= 4, stdout  # rounds 0..2 were printed, so were checkpointed
  assert f"[entropy] round {step - 1:>3}/4" not in stdout
  assert f"[entropy] round {step:>3}/4" in stdout

  _, want = uninterrupted()
  got = json.loads((work / "results.json").read_text())
  assert_same_results(got, want)

  again = cli(*CLI_ARGS, f"--workdir={work}")
  stdout, stderr = again.communicate(timeout=300)
  assert again.returncode == 0, stderr
  assert "is already complete" in stdout and "] round " not in stdout, stdout
  assert_same_results(json.loads((work / "results.json").read_text()), want)


@pytest.mark.slow
def test_changed_flag_is_refused_naming_the_differing_settings(uninterrupted):
  out, want = uninterrupted()
  p = cli(*CLI_ARGS[1:], "--rounds=7", "--epochs=3", f"--workdir={out}")
  _, stderr = p.communicate(timeout=300)
  assert p.returncode != 0
  lines = [l for l in stderr.strip().splitlines() if l.strip()]
  assert len(lines) == 1, stderr
  assert lines[0] == (f"error: --workdir={out} holds a run with different settings: "
                      "epochs 2 -> 3; use --overwrite to replace it.")
  assert json.loads((out / "results.json").read_text()) == want  # left untouched


# --------------------------------------------------------------------------------------------------
# In-process: the library side (checkpointing.StrategyCheckpoints, jaxal.run, run_experiment).


def blobs(n=200, seed=0):
  return gaussian_pool(n, 4, 8, seed)


ROUNDS = 4


@pytest.fixture(scope="module")
def small():
  x, y = blobs()
  xt, yt = blobs(80, seed=0)
  pool = LabeledArrays(jnp.asarray(x), jnp.asarray(y))
  test = LabeledArrays(jnp.asarray(xt), jnp.asarray(yt))
  model = models.get_model("mlp", 4, hidden=(16,))
  tc = TrainConfig(epochs=2, batch_size=8)
  tx = training.make_optimizer(tc)
  round_fn = jaxal.make_round(model, tx, strategies.entropy(),
                              budget=Budget(initial_size=8, query_size=5, rounds=ROUNDS),
                              train=tc, num_classes=4)
  seeds = [0, 1]
  splits = [make_splits(y, 4, 8, 8, s) for s in seeds]
  fns = make_round_fns(round_fn)
  def fresh():
    return round_fn.init_states(seeds, splits, pool)
  def run(**kw):
    return jaxal.run(round_fn, pool, test, seeds, splits, fns=fns, **kw)
  return {"run": run, "fresh": fresh, "seeds": seeds, "reference": run()}


class Killed(Exception):
  pass


def run_until(small, ckpt, stop_after_step):
  """Runs with checkpoints and 'dies' right after checkpoint `stop_after_step` is written."""
  def on_state(step, states, records):
    ckpt.save(step, states, records)
    if step == stop_after_step:
      raise Killed
  with pytest.raises(Killed):
    small["run"](on_state=on_state)


def without_seconds(records):
  return [{**r, "rounds": [{k: v for k, v in row.items() if k != "seconds"} for row in r["rounds"]]}
          for r in records]


def resume(small, ckpt):
  found = ckpt.restore_latest(small["fresh"](), small["seeds"])
  assert found is not None
  step, states, records, complete = found
  assert not complete
  return step, small["run"](states=states, records=records, on_state=ckpt.save)


@pytest.mark.slow
def test_resumed_loop_equals_the_uninterrupted_loop_exactly(small, tmp_path):
  ckpt = checkpointing.StrategyCheckpoints(str(tmp_path), "entropy", ROUNDS, every=1, keep=2)
  run_until(small, ckpt, 3)
  assert ckpt.steps() == [2, 3]  # max_to_keep=2
  step, records = resume(small, ckpt)
  assert step == 3
  assert without_seconds(records) == without_seconds(small["reference"])
  assert ckpt.steps() == [ROUNDS, ROUNDS + 1]
  _, _, _, complete = ckpt.restore_latest(small["fresh"](), small["seeds"])
  assert complete
  ckpt.close()


def _corrupt(step_dir, how):
  state_files = sorted((p for p in step_dir.joinpath("state").rglob("*") if p.is_file()
                        and p.parent.name == "d"), key=lambda p: -p.stat().st_size)
  if how == "truncated_state":
    for p in state_files:
      p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
  elif how == "flipped_state_bytes":
    for p in state_files:
      data = bytearray(p.read_bytes())
      for i in range(len(data) // 3, len(data) - 16, 97):
        data[i] ^= 0x5A
      p.write_bytes(bytes(data))
  elif how == "garbage_meta":
    step_dir.joinpath("meta", "metadata").write_text('{"step": 3, "records": [tru')
  elif how == "missing_state":
    shutil.rmtree(step_dir / "state")
  else:
    raise ValueError(how)


@pytest.mark.parametrize("how", ["truncated_state", "flipped_state_bytes", "garbage_meta",
                                 "missing_state"])
@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(small, tmp_path, how):
  messages = []
  ckpt = checkpointing.StrategyCheckpoints(str(tmp_path), "entropy", ROUNDS, every=1, keep=2,
                                           log=messages.append)
  run_until(small, ckpt, 3)
  _corrupt(tmp_path / "checkpoints" / "entropy" / "3", how)
  step, records = resume(small, ckpt)
  assert step == 2
  assert len(messages) == 1 and "checkpoint step 3" in messages[0], messages
  assert "falling back to step 2" in messages[0]
  assert os.listdir(tmp_path / "checkpoints" / "_corrupt")[0].startswith("entropy-step3-")
  for got, want in zip(records, small["reference"]):
    assert [r["selected"] for r in got["rounds"]] == [r["selected"] for r in want["rounds"]]
    assert [r["test_accuracy"] for r in got["rounds"]] == [r["test_accuracy"] for r in
                                                           want["rounds"]]
  ckpt.close()


@pytest.mark.slow
def test_half_written_step_directory_is_never_restored(small, tmp_path):
  """Orbax writes `<step>.orbax-checkpoint-tmp*/` and renames it when complete: a kill mid-save
  leaves such a folder, which is not a step (and is removed when the manager opens)."""
  directory = tmp_path / "checkpoints" / "entropy"
  ckpt = checkpointing.StrategyCheckpoints(str(tmp_path), "entropy", ROUNDS, every=1, keep=2)
  run_until(small, ckpt, 2)
  ckpt.close()
  half = directory / "3.orbax-checkpoint-tmp"
  shutil.copytree(directory / "2", half)
  for p in half.rglob("*"):
    if p.is_file():
      p.write_bytes(p.read_bytes()[:10])
  ckpt = checkpointing.StrategyCheckpoints(str(tmp_path), "entropy", ROUNDS, every=1, keep=2)
  assert ckpt.steps() == [1, 2]
  step, _ = resume(small, ckpt)
  assert step == 2
  assert not half.exists()  # removed by the manager before its first save
  ckpt.close()


def test_checkpoint_every_and_keep_bound_the_steps_on_disk(small, tmp_path):
  ckpt = checkpointing.StrategyCheckpoints(str(tmp_path), "entropy", ROUNDS, every=2, keep=1)
  saved = []
  small["run"](on_state=lambda s, st, rec: saved.append(s) if ckpt.save(s, st, rec) else None)
  assert saved == [2, 4, ROUNDS + 1]  # every 2nd evaluation, and always the last one
  assert ckpt.steps() == [ROUNDS + 1]
  ckpt.close()


def small_cfg(**overrides):
  from jaxal import presets as configs
  cfg = configs.load("default").to_dict()
  cfg.update(strategies="random", seeds=1, rounds=2, epochs=1, initial_size=10, query_size=5,
             val_size=20)
  cfg.update(overrides)
  return cfg


@pytest.mark.slow
def test_run_experiment_falls_back_refuses_and_overwrites(tmp_path):
  work = str(tmp_path / "w")
  want = experiment.run_experiment(small_cfg(), work, log=lambda m: None)
  # The last checkpoint is damaged and results.json lost (as if killed while writing them).
  os.remove(os.path.join(work, "results.json"))
  _corrupt(tmp_path / "w" / "checkpoints" / "random" / "3", "garbage_meta")
  log = []
  got = experiment.run_experiment(small_cfg(), work, log=log.append)
  text = "\n".join(log)
  assert "warning: checkpoint step 3" in text and "falling back to step 2" in text, text
  assert "[random] resuming from checkpoint step 2" in text
  assert_same_results(got, want)

  with pytest.raises(experiment.ConfigError, match=r"holds a run with different settings: "
                     r"learning_rate 0.001 -> 0.01, query_size 5 -> 4; use --overwrite"):
    experiment.run_experiment(small_cfg(query_size=4, learning_rate=0.01, checkpoint_every=3),
                              work, log=lambda m: None)
  log = []
  experiment.run_experiment(small_cfg(query_size=4, overwrite=True), work, log=log.append)
  assert any("--overwrite: replacing" in m for m in log)
  res = json.loads((tmp_path / "w" / "results.json").read_text())
  assert res["config"]["query_size"] == 4
  assert [r["labels"] for r in res["runs"][0]["rounds"]] == [10, 14, 18]


def test_changing_only_checkpoint_settings_or_workdir_keys_is_not_a_difference():
  old = {"rounds": 3, "workdir": "a", "checkpoint_every": 1, "cache_dir": "", "backend": "cpu"}
  new = {"rounds": 3, "workdir": "b", "checkpoint_every": 5, "cache_dir": "/c", "backend": "gpu",
         "keep_checkpoints": 4, "overwrite": False}
  assert config_differences(old, new) == []
  assert config_differences({"a": [1, 2]}, {"a": (1, 2), "b": 1}) == [
      "b (unset) -> 1"]


@pytest.mark.slow
def test_a_workdir_from_an_older_version_is_refused_with_the_missing_settings(tmp_path):
  """No compatibility shim: a config.json written before settings existed (here: without
  `stop_set` and `test_mc_samples`) is refused, naming them, and --overwrite replaces it."""
  work = tmp_path / "w"
  work.mkdir()
  record = {**small_cfg(), "workdir": str(work)}
  for key in ("stop_set", "test_mc_samples"):
    record.pop(key)
  (work / "config.json").write_text(json.dumps(record))
  with pytest.raises(experiment.ConfigError) as info:
    experiment.run_experiment(small_cfg(), str(work), log=lambda m: None)
  message = str(info.value)
  assert "holds a run with different settings" in message and "use --overwrite" in message
  assert "stop_set (unset) -> 0" in message and "test_mc_samples (unset) -> 0" in message
  experiment.run_experiment(small_cfg(overwrite=True), str(work), log=lambda m: None)
  assert json.loads((work / "config.json").read_text())["stop_set"] == 0


@pytest.mark.slow
def test_a_run_without_a_validation_set_checkpoints_and_resumes(tmp_path):
  """--val_size=0 gives zero-size state leaves, which orbax cannot store; they are checkpointed as
  placeholders and restored exactly, so the resumed run equals the uninterrupted one."""
  cfg = small_cfg(val_size=0)
  want = experiment.run_experiment(cfg, str(tmp_path / "a"), log=lambda m: None)
  work = tmp_path / "b"
  experiment.run_experiment(cfg, str(work), log=lambda m: None)
  os.remove(work / "results.json")
  shutil.rmtree(work / "checkpoints" / "random" / "3")  # as if killed before the last round
  log = []
  got = experiment.run_experiment(cfg, str(work), log=log.append)
  assert "[random] resuming from checkpoint step 2 (rounds 0..1 done)" in log
  for res in (got, want):
    for run in res["runs"]:
      for row in run["rounds"]:
        assert row["val_accuracy"] is None
        row["val_accuracy"] = 0.0
  assert_same_results(got, want)


@pytest.mark.slow
def test_a_run_is_extended_by_more_rounds_and_another_strategy(tmp_path):
  """rounds 2 -> 3 and a strategy added: the finished strategy continues from its checkpoint
  before the old final training, the new one runs, and the results equal an uninterrupted run of
  the extended settings; fewer rounds are refused."""
  work = str(tmp_path / "w")
  experiment.run_experiment(small_cfg(), work, log=lambda m: None)
  log = []
  got = experiment.run_experiment(small_cfg(rounds=3, strategies="random,entropy"), work,
                                  log=log.append)
  text = "\n".join(log)
  assert "rounds 2 -> 3" in text and "adding entropy" in text, text
  assert "[random] extending: the final training of the 2-round run is redone as round 2" in text
  assert "[random] resuming from checkpoint step 2" in text
  want = experiment.run_experiment(small_cfg(rounds=3, strategies="random,entropy"),
                                   str(tmp_path / "fresh"), log=lambda m: None)
  assert_same_results(got, want)
  with pytest.raises(experiment.ConfigError, match=r"holds a run of 3 rounds; --rounds=2 would "
                     "cut it back; use --overwrite"):
    experiment.run_experiment(small_cfg(rounds=2, strategies="random,entropy"), work,
                              log=lambda m: None)


@pytest.mark.slow
def test_a_run_is_extended_by_more_seeds(tmp_path):
  """seeds 1 -> 2: seed 0 is kept as it was, seed 1 runs as a group of its own (own checkpoints)
  and equals seed 1 of a run started with two seeds; fewer seeds are refused."""
  work = str(tmp_path / "w")
  first = experiment.run_experiment(small_cfg(seeds=1), work, log=lambda m: None)
  log = []
  got = experiment.run_experiment(small_cfg(seeds=2), work, log=log.append)
  assert "adding seeds 1..1" in "\n".join(log)
  assert "[random] complete in checkpoint step 3; nothing to run" in "\n".join(log)
  assert os.path.isdir(os.path.join(work, "checkpoints", "random@seeds1-1"))
  assert got["runs"][0] == first["runs"][0]
  assert json.loads(open(os.path.join(work, "config.json")).read())["seed_groups"] == [[0], [1]]
  want = experiment.run_experiment(small_cfg(seeds=2), str(tmp_path / "fresh"), log=lambda m: None)
  assert_same_results(got, want)
  again = []
  experiment.run_experiment(small_cfg(seeds=2), work, log=again.append)
  assert any("already complete" in m for m in again)
  with pytest.raises(experiment.ConfigError, match=r"holds a run of 2 seeds; --seeds=1 would cut "
                     "it back"):
    experiment.run_experiment(small_cfg(seeds=1), work, log=lambda m: None)
