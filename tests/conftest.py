import os
import shutil
import tempfile

_OWN_CACHE = []

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def pytest_configure(config):
  """One persistent XLA compilation cache for the whole test run (both xdist workers and the
  command-line runs the tests start inherit it), so a program that several tests compile is
  compiled once. It starts empty every run (a fresh temporary folder), so the suite's time never
  depends on an earlier run; `JAXAL_TEST_CACHE` names another folder. Cached executables are the
  same programs, so results are unchanged (the golden tests compare them bit for bit)."""
  if hasattr(config, "workerinput") or "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return   # an xdist worker: the controller set the folder before starting it
  folder = os.environ.get("JAXAL_TEST_CACHE")
  if not folder:
    folder = tempfile.mkdtemp(prefix="jaxal-xla-cache-")
    _OWN_CACHE.append(folder)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")


def pytest_unconfigure(config):
  del config
  for folder in _OWN_CACHE:
    shutil.rmtree(folder, ignore_errors=True)
