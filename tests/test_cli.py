"""The command line as installed: console scripts, `--help` that exits 0 and lists what each
setting accepts, `--list`, and no top-level `experiments` package in the install (a user's own
`experiments/` folder keeps working beside jaxal)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from jaxal import models, presets, registry
from jaxal.cli import listing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def test_the_package_installs_jaxal_only_and_declares_the_console_scripts():
  text = open(os.path.join(ROOT, "pyproject.toml")).read()
  assert re.search(r'include = \["jaxal\*"\]', text)
  for name, target in (("jaxal-run", "jaxal.cli.run:cli"), ("jaxal-report", "jaxal.cli.report:cli"),
                       ("jaxal-benchmark", "jaxal.cli.benchmark:cli")):
    assert f'{name} = "{target}"' in text


def test_every_strategy_model_preset_and_dataset_has_one_line():
  assert [n for n, _ in listing.entries("strategies")] == registry.names()
  assert [n for n, _ in listing.entries("models")] == list(models.MODELS)
  assert [n for n, _ in listing.entries("presets")] == presets.available()
  for kind in listing.KINDS:
    for name, line in listing.entries(kind):
      assert line and "\n" not in line and len(line) <= 100, (kind, name, line)


@pytest.mark.parametrize("module", ["jaxal.cli.run", "jaxal.cli.report", "jaxal.cli.benchmark"])
def test_help_exits_zero(module, tmp_path):
  p = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, env=ENV,
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  assert "--out" in p.stdout or "--strategies" in p.stdout
  if module == "jaxal.cli.run":
    for kind in listing.KINDS:
      assert f"{kind}:" in p.stdout
    assert "  typiclust " in p.stdout and "  resnet18 " in p.stdout


def test_list_prints_one_kind_and_refuses_others(tmp_path):
  # A user's own `experiments/` package in the working folder does not shadow jaxal's command.
  (tmp_path / "experiments").mkdir()
  (tmp_path / "experiments" / "__init__.py").write_text("")
  run = lambda *a: subprocess.run([sys.executable, "-m", "jaxal.cli.run", *a], cwd=tmp_path,
                                  env=ENV, capture_output=True, text=True, timeout=120)
  p = run("--list=presets")
  assert p.returncode == 0, p.stderr
  assert p.stdout.splitlines()[0] == "presets:"
  assert {ln.split()[0] for ln in p.stdout.splitlines()[1:]} == set(presets.available())
  p = run("--list=flags")
  assert p.returncode == 1
  assert "--list: unknown value 'flags'; accepted: strategies, models, presets, datasets" in p.stderr


def test_installed_console_script_runs_when_present(tmp_path):
  exe = shutil.which("jaxal-run")
  if exe is None:
    pytest.skip("jaxal-run is not on PATH (the package is not installed in this environment)")
  p = subprocess.run([exe, "--list=datasets"], cwd=tmp_path, env=ENV, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  assert "digits" in p.stdout
