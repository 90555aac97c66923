"""Many hosts (issue 18), simulated by two local processes joined by jax.distributed over loopback
(gloo collectives on CPU): the pool is split over the two processes' devices, and a run killed
after a checkpoint and started again selects exactly what one process selects."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ("--strategies=bald", "--uncertainty=mc_dropout", "--mc_samples=3", "--seeds=1",
        "--rounds=3", "--epochs=2", "--train_limit=400", "--test_limit=100",
        "--eval_batch_size=32", "--query_size=10")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def env():
  e = {**os.environ, "JAX_PLATFORMS": "cpu"}
  e.pop("XLA_FLAGS", None)
  return e


def start_two(workdir, logs):
  port = free_port()
  return [subprocess.Popen(
      [sys.executable, "-m", "experiments.run", *ARGS, f"--workdir={workdir}",
       f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=ROOT, env=env(), stdout=open(logs[i], "w"), stderr=subprocess.STDOUT, text=True)
      for i in range(2)]


def rounds(workdir):
  run = json.loads((workdir / "results.json").read_text())["runs"][0]
  return [(r["selected"], r["test_accuracy"]) for r in run["rounds"]]


@pytest.mark.slow
def test_two_processes_killed_and_resumed_select_what_one_process_selects(tmp_path):
  ref = subprocess.run([sys.executable, "-m", "experiments.run", *ARGS, "--checkpoint_every=0",
                        f"--workdir={tmp_path / 'one'}"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=600)
  assert ref.returncode == 0, ref.stderr
  work, logs = tmp_path / "two", [tmp_path / "p0.log", tmp_path / "p1.log"]
  procs = start_two(work, logs)
  deadline = time.time() + 400
  while "[bald] round   1/3" not in logs[0].read_text():   # checkpoint step 2 is written
    assert time.time() < deadline and all(p.poll() is None for p in procs), logs[0].read_text()
    time.sleep(0.5)
  for p in procs:
    p.send_signal(signal.SIGKILL)
    p.wait()
  assert not (work / "results.json").exists()
  procs = start_two(work, logs)
  for p in procs:
    assert p.wait(timeout=400) == 0, logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]
  text = logs[0].read_text()
  assert "mesh: {'pool': 2} over 2 devices (2 process(es))" in text
  assert "[bald] resuming from checkpoint step " in text
  assert rounds(work) == rounds(tmp_path / "one")
  assert rounds(work / "process_1") == rounds(tmp_path / "one")
  assert len(rounds(work)) == 4 and all(len(s) == 10 for s, _ in rounds(work)[:3])
