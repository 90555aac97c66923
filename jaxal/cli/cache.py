"""The persistent XLA compilation cache of the command line: the programs a run compiles are kept
on disk, so the next run of the same command (or a resumed one) loads them instead of compiling.

A cached executable is the same program, so results are unchanged. `JAX_COMPILATION_CACHE_DIR`,
when set, wins (JAX reads it itself); `--compilation_cache=` (empty) turns the cache off.
"""
from __future__ import annotations

import os


def default_folder() -> str:
  """`$XDG_CACHE_HOME/jaxal/xla`, or `~/.cache/jaxal/xla`."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxal", "xla")


def use_compilation_cache(folder: str, min_compile_seconds: float = 0.2) -> str | None:
  """Points JAX's persistent compilation cache at `folder` (created if needed) for programs that
  took at least `min_compile_seconds` to compile (`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`
  wins when set). Returns the folder in use, or None (off, or the
  folder cannot be created: the run goes on without a cache)."""
  import jax  # pylint: disable=import-outside-toplevel
  env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if env:
    return env
  if not folder:
    return None
  folder = os.path.abspath(os.path.expanduser(folder))
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", folder)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
  return folder
