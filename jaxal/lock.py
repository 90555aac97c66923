"""One run per workdir at a time: an exclusive lock file `<workdir>/.jaxal.lock` holding the pid of
the process that runs there.

A second run in the same workdir is refused (`WorkdirLocked`, a ConfigError) naming that pid. A lock
left by a process that is no longer running (killed with SIGKILL, a crashed machine) is stale: it
is taken over, with a message. The lock is released (the file removed) when the run ends, however
it ends; a workdir the lock created and that stayed empty is removed again.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import time
from typing import Callable, Iterator

from jaxal.settings import ConfigError

LOCK_FILE = ".jaxal.lock"
_FRESH_S = 10.0  # a lock file younger than this without a pid is being written, not stale


class WorkdirLocked(ConfigError):
  """Another running process holds the workdir's lock."""


def _read_pid(path: str) -> int | None:
  try:
    with open(path) as f:
      return int(f.read().split()[0])
  except (OSError, ValueError, IndexError):
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


@contextlib.contextmanager
def workdir_lock(workdir: str, log: Callable[[str], None] = print) -> Iterator[str]:
  """Holds `<workdir>/.jaxal.lock` (creating `workdir`) for the duration of the block."""
  created = not os.path.isdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  while True:
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      pid = _read_pid(path)
      if pid is None:
        try:
          age = time.time() - os.path.getmtime(path)
        except OSError:
          continue  # removed meanwhile: try again
        if age < _FRESH_S:
          raise WorkdirLocked(f"--workdir={workdir} is being locked by another run ({path}); "
                              "wait for it to finish.") from None
      elif _alive(pid):
        raise WorkdirLocked(f"--workdir={workdir} is in use by another run (pid {pid}); wait for "
                            f"it to finish or stop it (lock file {path}).") from None
      who = f"process {pid}" if pid is not None else "an unknown process"
      log(f"note: taking over the stale lock {path} of {who}, which is no longer running.")
      with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
      continue
    with os.fdopen(fd, "w") as f:
      f.write(f"{os.getpid()}\n")
    break
  try:
    yield path
  finally:
    if _read_pid(path) == os.getpid():
      with contextlib.suppress(OSError):
        os.unlink(path)
    if created:
      with contextlib.suppress(OSError):
        os.rmdir(workdir)  # only if empty: a run refused before writing anything


def holding_workdir_lock(fn: Callable) -> Callable:
  """Decorates a function taking (cfg, workdir, log=...) to run under `workdir_lock(workdir)`."""
  signature = inspect.signature(fn)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    with workdir_lock(bound.arguments["workdir"], bound.arguments.get("log") or print):
      return fn(*args, **kwargs)

  return wrapper
