"""The refactor of issue #16 changed no result: every golden case recorded from the code before it
(`tests/golden/record.py`) is reproduced bit for bit on CPU: the same selections, labels and
interactions, and floating-point metrics equal with ==."""
import json
import os
import sys

import jax
import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
sys.path.insert(0, HERE)
import record  # noqa: E402  pylint: disable=wrong-import-position

FAST = ("default",)


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in FAST else pytest.mark.slow)
                                  for n in record.CASES])
def test_golden_results_are_reproduced_bit_for_bit(name):
  if jax.default_backend() != "cpu":
    pytest.skip("the golden results were recorded on CPU")
  with open(os.path.join(HERE, f"{name}.json")) as f:
    golden = json.load(f)
  assert golden["settings"] == record.CASES[name]
  runs = record.run_case(name)
  assert [(r["strategy"], r["seed"]) for r in runs] == [
      (r["strategy"], r["seed"]) for r in golden["runs"]]
  for got, want in zip(runs, golden["runs"]):
    for g, w in zip(got["rounds"], want["rounds"]):
      assert g["selected"] == w["selected"], (got["strategy"], got["seed"], g["round"])
    assert got == want, (got["strategy"], got["seed"])
