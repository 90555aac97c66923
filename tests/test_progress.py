"""What a run shows while it runs (`jaxal.progress`): the reporter's phase line, percentage, loss and
ETA on a fake clock; the divergence warning; and on a small real run: the phases arrive in order,
selections and accuracies are the same with progress on and off, and the final program is compiled
before the last round (which is not labelled as compiling)."""
import io
import os
import math

import numpy as np
import pytest

import jaxal
from jaxal import driver, progress
from jaxal import strategies as st
from test_round import _setup  # pylint: disable=wrong-import-order


class FakeClock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def test_format_seconds():
  assert progress.format_seconds(4.24) == "4.2s"
  assert progress.format_seconds(185) == "3m05s"
  assert progress.format_seconds(2 * 3600 + 7 * 60 + 10) == "2h07m"
  assert progress.format_seconds(-1) == "0.0s"


def test_reporter_shows_phase_seconds_percentage_loss_and_eta_on_a_fake_clock():
  clock, out = FakeClock(), io.StringIO()
  rep = progress.Reporter(out, live=True, clock=clock, tick=None, strategies_after=2)
  rep.start_strategy("entropy", rounds=4, seeds=2)
  rep.start_round(0, compiling=True)
  clock.t += 5
  assert rep.line() == "[entropy] round 0/4: compiling 5.0s"
  rep.phase("train", 0)
  clock.t += 25
  rep.end_round(30.0, compiled=True)          # compiling: kept out of the median
  assert rep.eta() is None and rep.eta_text() == ""
  for r, seconds in ((1, 2.0), (2, 4.0)):
    rep.start_round(r)
    clock.t += seconds
    rep.end_round(seconds)
  # Rounds 3 and 4 (the final) remain at the median 3 s; each of the 2 strategies after this one
  # costs its first (compiling) round 30 s + 4 rounds x 3 s.
  assert rep.eta() == pytest.approx((6.0, 6.0 + 2 * (30.0 + 12.0)))
  assert rep.eta_text() == "ETA 6.0s (run 1m30s, 2 more strategies)"
  rep.start_round(3)
  rep.phase("train", 3)
  clock.t += 1.5
  rep.phase("evaluate", np.float32(0.5))    # seed 0's training loss
  clock.t += 0.25
  line = rep.line()
  assert line.startswith("[entropy] round 3/4: evaluate 0.2s, 16%, loss 0.5, ETA 4.2s")
  rep.phase("select", 0.9)
  rep.phase("train", 3)
  rep.phase("evaluate", np.float32(1.5))
  assert "66%, loss 1" in rep.line()         # the mean loss over the seeds seen
  out.seek(0)
  out.truncate(0)
  rep.end_round(2.0)
  assert out.getvalue().startswith("\r ") and out.getvalue().endswith("\r")   # line erased
  assert rep.line() == ""
  rep.finish_strategy()
  assert rep.round_medians == [2.0]


def test_reporter_writes_plain_lines_only_for_slow_rounds_off_a_terminal():
  clock, out = FakeClock(), io.StringIO()
  rep = progress.Reporter(out, clock=clock, tick=None, plain_every=30)
  assert not rep.live   # StringIO is no terminal
  rep.start_strategy("margin", rounds=2)
  rep.start_round(0)
  rep.phase("train", 0)
  clock.t += 10
  rep.phase("evaluate", 2.0)
  assert out.getvalue() == ""
  clock.t += 25
  rep.refresh()
  assert out.getvalue() == "[margin] round 0/2: evaluate 25.0s, 33%, loss 2\n"
  rep.refresh()
  assert out.getvalue().count("\n") == 1
  assert "\r" not in out.getvalue()


def test_divergence_warning_fires_once_on_nan_and_exploding_losses():
  nan = progress.watch_losses([[2.3, 2.2], [1.0, float("nan")], [float("nan")] * 2])
  assert len(nan) == 1 and "train_loss nan at round 1 is not finite" in nan[0]
  exploding = progress.watch_losses([[0.5], [0.4], [60.0], [1e4], [3.5e22]])
  assert len(exploding) == 1 and "at round 2 grew more than 100x" in exploding[0]
  # Already diverged in round 0 (learning rate 1e6): compared with a uniform prediction, ln C.
  huge = progress.watch_losses([[6.3e5], [1.1e6]], num_classes=10)
  assert len(huge) == 1 and "round 0" in huge[0] and f"({math.log(10):.3g})" in huge[0]
  assert progress.watch_losses([[2.3], [0.9], [0.1], [0.3]], num_classes=10) == []


def _without_seconds(records):
  return [{**rec, "rounds": [{k: v for k, v in r.items() if k != "seconds"} for r in rec["rounds"]]}
          for rec in records]


@pytest.mark.slow
def test_progress_phases_in_order_same_results_and_final_compiled_ahead():
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0, 1))
  off = jaxal.run(round_fn, pool, test, [0, 1], splits)

  events, rounds_seen = [], []

  class Recording(progress.Reporter):
    def phase(self, name, *values):
      events.append((self.round, name))
      super().phase(name, *values)

  out = io.StringIO()
  rep = Recording(out, live=True, tick=None)
  fns = driver.make_round_fns(round_fn, progress_hooks=True)
  on = jaxal.run(round_fn, pool, test, [0, 1], splits, fns=fns, progress=rep,
                 on_round=rounds_seen.append)
  assert _without_seconds(on) == _without_seconds(off)   # selections, accuracies, losses
  # lax.map over seeds on CPU: each seed passes the phases in turn; the final round does not select.
  step_phases = ["train", "evaluate", "select"] * 2
  assert events == ([(0, p) for p in step_phases] + [(1, p) for p in step_phases]
                    + [(2, p) for p in ["train", "evaluate"] * 2])
  assert "[entropy] round 1/2: evaluate" in out.getvalue() and "loss " in out.getvalue()
  # Round 0 compiled the round; the final program was compiled ahead (during round 0), so the
  # last round found it compiled (no XLA compilation during that round, the driver's detection).
  assert [p["compiled"] for p in rounds_seen] == [True, False, False]
  assert fns[1]._cache_size() == 1
  assert [p["train_loss"] for p in rounds_seen] == pytest.approx(
      [np.mean([rec["rounds"][r]["train_loss"] for rec in off]) for r in range(3)])
  assert all(p["warning"] is None for p in rounds_seen)


@pytest.mark.slow
def test_progress_after_a_long_round_switches_to_the_phase_programs():
  # phases=<seconds> (what --progress=auto gives on a terminal): round 0 runs the cacheable program
  # without host callbacks; it took >= 0 s, so the later rounds run the programs with the phase
  # reports. The values are the same as without progress.
  round_fn, pool, test, splits, y = _setup(st.entropy(), rounds=2, seeds=(0,))
  off = jaxal.run(round_fn, pool, test, [0], splits)
  events = []

  class Recording(progress.Reporter):
    def phase(self, name, *values):
      events.append((self.round, name))
      super().phase(name, *values)

  for after, expected in ((0.0, [(1, "train"), (1, "evaluate"), (1, "select"), (2, "train"),
                                 (2, "evaluate")]),
                          (1e9, [])):         # no round is that long: never switches
    events.clear()
    on = jaxal.run(round_fn, pool, test, [0], splits, phases=after,
                   progress=Recording(io.StringIO(), live=True, tick=None))
    assert _without_seconds(on) == _without_seconds(off)
    assert sorted(events) == sorted(expected)    # (debug callbacks are unordered within a round)


@pytest.mark.slow
def test_progress_rounds_keeps_the_programs_in_the_compilation_cache(tmp_path):
  """`--progress=rounds` compiles the round without host callbacks, so JAX's persistent cache
  (`--compilation_cache`) keeps it; `--progress=phases` programs carry callbacks and are not
  written. Results are the same either way."""
  import json
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")
         and k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}
  env.update(JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")   # keep all
  runs = {}
  for mode in ("phases", "rounds"):
    cache = tmp_path / f"cache_{mode}"
    out = subprocess.run(
        [sys.executable, "-m", "experiments.run", "--strategies=entropy", "--seeds=1",
         "--rounds=2", "--epochs=2", f"--workdir={tmp_path / mode}", f"--progress={mode}",
         f"--compilation_cache={cache}"], cwd=repo, env=env, capture_output=True, text=True,
        timeout=600)
    assert out.returncode == 0, out.stderr
    rows = json.load(open(tmp_path / mode / "results.json"))["runs"][0]["rounds"]
    runs[mode] = ([{k: v for k, v in row.items() if k != "seconds"} for row in rows],
                  sum(len(files) for _, _, files in os.walk(cache)))
  assert runs["phases"][0] == runs["rounds"][0]
  assert runs["rounds"][1] > runs["phases"][1], runs   # the round and final programs are kept
  bad = subprocess.run([sys.executable, "-m", "experiments.run", "--progress=live"], cwd=repo,
                       env=env, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1] == (
      "error: --progress: unknown value 'live'; accepted: auto, phases, rounds.")
