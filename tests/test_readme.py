"""The README's Python code blocks run as written, in order, in one namespace (a reader pastes
them into one session)."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def python_blocks() -> list[str]:
  return re.findall(r"```python\n(.*?)```", open(README).read(), re.S)


def test_the_readme_has_the_api_blocks():
  blocks = python_blocks()
  assert any("jaxal.make_round(" in b for b in blocks)
  assert any("jaxal.Strategy(" in b for b in blocks)


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(capsys):
  namespace = {"__name__": "__readme__"}
  for i, block in enumerate(python_blocks()):
    try:
      exec(compile(block, f"README.md python block {i}", "exec"), namespace)  # pylint: disable=exec-used
    except Exception as e:  # pragma: no cover - the message says which block failed
      raise AssertionError(f"README python block {i} failed: {e!r}\n{block}") from e
  records = namespace["records"]
  assert len(records) == 3 and all(len(r["rounds"]) == 6 for r in records)
  assert int(namespace["state"].num_labeled) == 70
