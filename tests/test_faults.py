"""What a user meets when something outside jaxal goes wrong: one line instead of a traceback, a
non-zero exit code and a workdir that resumes (disk full, read-only workdir, a file as --workdir,
Ctrl-C, a model that cannot take the images, two runs in one workdir); --oracle=human's exit code;
the mode of result files; data files that are wrong in a way the message names."""
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import types

import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags

from jaxal import lock, reporting
from jaxal.cli import run as run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ("--epochs=1", "--rounds=2", "--seeds=1", "--strategies=random", "--initial_size=10",
         "--query_size=5")


def cli(capsys, *args):
  """`jaxal-run ARGS` in this process: (exit code, stdout, stderr lines)."""
  flags.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as info:
    run_cli.cli(["jaxal-run", *args])
  out = capsys.readouterr()
  return info.value.code, out.out, [l for l in out.err.splitlines() if l.strip()]


@pytest.mark.slow
def test_disk_full_while_checkpointing_is_one_line_and_the_run_resumes(tmp_path, capsys,
                                                                        monkeypatch):
  work = tmp_path / "w"
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step == 2:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", save)
  code, _, err = cli(capsys, *SMALL, f"--workdir={work}")
  assert code == 1 and len(err) == 1, err
  assert err[0].startswith("error: no space left on the device while writing ")
  assert str(work / "checkpoints" / "random") in err[0] and "run the same command again" in err[0]
  assert not (work / lock.LOCK_FILE).exists()
  monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
  code, out, err = cli(capsys, *SMALL, f"--workdir={work}")
  assert code is None and not err, err
  assert "[random] resuming from checkpoint step 1" in out
  assert len(json.loads((work / "results.json").read_text())["runs"][0]["rounds"]) == 3


def _failing_os(**replaced):
  return types.SimpleNamespace(**{**vars(os), **replaced})


def test_disk_full_while_writing_results_is_one_line_and_leaves_no_temporary_file(
    tmp_path, capsys, monkeypatch):
  def fdopen(fd, *args, **kwargs):
    os.close(fd)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(reporting, "os", _failing_os(fdopen=fdopen))
  work = tmp_path / "w"
  code, _, err = cli(capsys, *SMALL, f"--workdir={work}")
  assert code == 1 and err == [
      f"error: no space left on the device while writing {work / 'config.json'}; free some "
      "space, then run the same command again to resume."]
  assert not work.exists() or os.listdir(work) == []  # no temporary file, no lock


@pytest.mark.parametrize("code_,words", [(errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied")])
def test_a_read_only_workdir_is_one_line(tmp_path, capsys, monkeypatch, code_, words):
  def mkstemp(dir=None, **kwargs):
    raise OSError(code_, os.strerror(code_), dir)

  monkeypatch.setattr(reporting, "tempfile", types.SimpleNamespace(mkstemp=mkstemp))
  work = tmp_path / "w"
  work.mkdir()
  code, _, err = cli(capsys, *SMALL, f"--workdir={work}")
  assert code == 1 and len(err) == 1, err
  assert err[0].startswith(f"error: cannot write {work}: {words}") and "--workdir" in err[0]


@pytest.mark.parametrize("sub", ["", "sub"])
def test_a_file_as_workdir_is_one_line(tmp_path, capsys, sub):
  path = tmp_path / "file"
  path.write_text("not a folder")
  work = path / sub if sub else path
  code, _, err = cli(capsys, *SMALL, f"--workdir={work}")
  assert code == 1 and len(err) == 1, err
  assert err[0].startswith("error: cannot create ") and "a file is in the way" in err[0]
  assert path.read_text() == "not a folder"


def test_a_model_that_cannot_take_the_images_shows_only_its_message(tmp_path, capsys,
                                                                   monkeypatch):
  args = (*SMALL, "--model=lenet5", f"--workdir={tmp_path / 'w'}")
  code, _, err = cli(capsys, *args)
  assert code == 1 and err == [
      "error: --model=lenet5: lenet5 needs images of at least 12x12 pixels, got 8x8; use "
      "--model=cnn3 or --model=mlp for smaller images."], err
  monkeypatch.setenv("JAXAL_DEBUG", "1")  # the full traceback
  flags.FLAGS.unparse_flags()
  with pytest.raises(ValueError, match="lenet5 needs images"):
    run_cli.cli(["jaxal-run", *args])


def _results(path):
  runs = json.loads((path / "results.json").read_text())["runs"]
  return [(r["strategy"], r["seed"], [(row["labels"], row["selected"], round(row["test_accuracy"], 6))
                                      for row in r["rounds"]]) for r in runs]


@pytest.mark.slow
def test_ctrl_c_exits_130_without_a_traceback_and_the_run_resumes(tmp_path, capsys):
  # Enough rounds that the run is still going when the signal lands, even with every program
  # already in the test run's compilation cache.
  args = ("--dataset=digits", "--epochs=20", "--rounds=12", "--query_size=5", "--seeds=1",
          "--strategies=random")
  work = tmp_path / "interrupted"
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
  env.pop("JAXAL_DEBUG", None)
  proc = subprocess.Popen([sys.executable, "-m", "experiments.run", *args, f"--workdir={work}"],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True,
                          # A shell's background job ignores SIGINT and children inherit that:
                          # give the run the default handling a terminal's Ctrl-C meets.
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    for line in proc.stdout:
      if "round   0/12" in line:
        break
    # A SIGINT that lands in a garbage-collection callback is swallowed by Python ("Exception
    # ignored"), as a second Ctrl-C would not be: send it until the process stops.
    for _ in range(20):
      proc.send_signal(signal.SIGINT)
      try:
        proc.wait(timeout=0.5)
        break
      except subprocess.TimeoutExpired:
        pass
    out, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 130, (proc.returncode, err)
  assert "Traceback" not in err
  assert err.strip().splitlines()[-1] == ("interrupted; run the same command again to resume.")
  assert not (work / lock.LOCK_FILE).exists()
  code, out, err = cli(capsys, *args, f"--workdir={work}")
  assert code is None, err
  assert "[random] resuming from checkpoint step" in out
  code, _, err = cli(capsys, *args, f"--workdir={tmp_path / 'uninterrupted'}")
  assert code is None, err
  assert _results(work) == _results(tmp_path / "uninterrupted")


@pytest.mark.parametrize("classes", ["3", "7"])
def test_fewer_than_two_classes_are_refused_naming_the_flag(tmp_path, capsys, classes):
  code, _, _ = cli(capsys, *SMALL, f"--classes={classes}", f"--workdir={tmp_path / 'w'}")
  assert code == (f"error: --classes={classes}: active learning needs at least two classes, got "
                  f"1 ({classes}); name two or more.")
  assert not (tmp_path / "w").exists()


def test_a_second_run_in_a_locked_workdir_stops_naming_the_holder(tmp_path, capsys):
  work = tmp_path / "w"
  work.mkdir()
  holder = os.getppid()  # a live process other than this one
  (work / lock.LOCK_FILE).write_text(f"{holder}\n")
  code, _, _ = cli(capsys, *SMALL, f"--workdir={work}")
  assert code.startswith(f"error: --workdir={work} is in use by another run (pid {holder}); ")
  assert "\n" not in code
  assert (work / lock.LOCK_FILE).read_text() == f"{holder}\n"  # not taken, not removed
  assert not (work / "config.json").exists()


def test_the_lock_holds_this_pid_while_running_and_is_released(tmp_path):
  work = tmp_path / "w"
  with lock.workdir_lock(str(work)) as path:
    assert open(path).read() == f"{os.getpid()}\n"
    with pytest.raises(lock.WorkdirLocked, match=rf"\(pid {os.getpid()}\)"):
      with lock.workdir_lock(str(work)):
        pass
  assert not work.exists()  # created by the lock and left empty: removed again


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path):
  dead = subprocess.Popen(["true"])
  dead.wait()
  work = tmp_path / "w"
  work.mkdir()
  (work / lock.LOCK_FILE).write_text(f"{dead.pid}\n")
  log = []
  with lock.workdir_lock(str(work), log=log.append) as path:
    assert open(path).read() == f"{os.getpid()}\n"
  assert log == [f"note: taking over the stale lock {path} of process {dead.pid}, which is no "
                 "longer running."]
  assert not os.path.exists(path) and work.is_dir()


@pytest.mark.slow
def test_human_oracle_exits_3_while_waiting_for_answers(tmp_path, capsys):
  args = ("--oracle=human", "--seeds=1", "--strategies=margin", "--rounds=1", "--epochs=1",
          "--query_size=3", "--initial_size=10", "--val_size=20", f"--workdir={tmp_path / 'w'}")
  code, out, err = cli(capsys, *args)
  assert code == run_cli.EXIT_WAITING == 3, err
  assert "round 0/1 waits for your answers" in out and "results written" not in out
  assert not (tmp_path / "w" / lock.LOCK_FILE).exists()
  code, out, err = cli(capsys, *args)  # still waiting: the same code again
  assert code == 3, err


def test_result_files_get_the_mode_the_umask_allows(tmp_path):
  old = os.umask(0o022)
  try:
    reporting.write_json_atomic(str(tmp_path / "a.json"), {"a": 1})
    reporting.plot_curves([{"strategy": "random", "seed": 0, "rounds": [
        {"labels": 10, "test_accuracy": 0.5}, {"labels": 20, "test_accuracy": 0.6}]}],
        str(tmp_path / "c.png"))
    os.umask(0o077)
    reporting.write_atomic(str(tmp_path / "b.md"), "b")
  finally:
    os.umask(old)
  assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644
  assert stat.S_IMODE(os.stat(tmp_path / "c.png").st_mode) == 0o644   # pictures too
  assert stat.S_IMODE(os.stat(tmp_path / "b.md").st_mode) == 0o600
  assert json.loads((tmp_path / "a.json").read_text()) == {"a": 1}
  assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def _npz(path, labels, **extra):
  labels = np.asarray(labels, np.int64)
  np.savez(path, images=np.zeros((labels.size, 8, 8), np.uint8), labels=labels, **extra)
  return str(path)


def test_a_stray_label_without_class_names_names_the_values_found(tmp_path):
  from jaxal.data import DatasetError, load_dataset
  labels = np.repeat(np.arange(10), 20)
  labels[7] = 42
  with pytest.raises(DatasetError) as info:
    load_dataset("npz", _npz(tmp_path / "d.npz", labels))
  message = str(info.value)
  assert "the label values found are 0-9, 42 (11 distinct; rare values: 42 (1 image))" in message
  assert "classes 10-41 (32 of 43) have no images" in message and "val_size" not in message


def test_labels_that_are_not_consecutive_name_the_missing_classes(tmp_path):
  from jaxal.data import DatasetError, load_dataset
  labels = np.repeat([0, 5, 7], 20)
  with pytest.raises(DatasetError) as info:
    load_dataset("npz", _npz(tmp_path / "d.npz", labels))
  message = str(info.value)
  assert "the label values found are 0, 5, 7 (3 distinct)" in message
  assert "classes 1-4, 6 (5 of 8) have no images. Relabel to 0-2" in message
  # With class names, the classes are what the file says.
  ds = load_dataset("npz", _npz(tmp_path / "n.npz", np.repeat([0, 1, 2], 20),
                                class_names=np.array(["a", "b", "c"])))
  assert ds.num_classes == 3


@pytest.mark.parametrize("content,what", [(b"x,y\n1,2\n", "a text file"),
                                          (b"", "empty")])
def test_a_file_that_is_not_an_npz_says_so(tmp_path, content, what):
  from jaxal.data import DatasetError, load_dataset
  path = tmp_path / "data.npz"
  path.write_bytes(content)
  with pytest.raises(DatasetError) as info:
    load_dataset("npz", str(path))
  message = str(info.value)
  assert f"'{path}' is not an npz file (it is {what})" in message
  assert "pickle" not in message
