"""Errors for bad arguments, written once and shown in the caller's words.

A library function that refuses an argument raises `ArgumentError`, a `ValueError` whose message is
a template naming parameters in braces: `"{budget.query_size} must be >= 1, got 0"`. Printed
plainly (`str(e)`) the braces are dropped and the Python names stay (`budget.query_size must be
...`); the command line renders the same template with its own table of parameter -> flag names
(`--query_size must be ...`), so one message serves both and neither layer guesses.
"""
from __future__ import annotations

import re
from typing import Mapping

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class ArgumentError(ValueError):
  """A bad argument. `template` names parameters as `{name}`; `params` lists the names it uses."""

  def __init__(self, template: str):
    self.template = template
    self.params = tuple(_PARAM.findall(template))
    super().__init__(self.render())

  def render(self, names: Mapping[str, str] | None = None) -> str:
    """The message with each `{name}` replaced by `names[name]` (the name itself if absent)."""
    names = names or {}
    return _PARAM.sub(lambda m: names.get(m.group(1), m.group(1)), self.template)


def check_int(value, name: str, minimum: int) -> int:
  """`value` as an int >= minimum, else ArgumentError naming `name`."""
  if isinstance(value, bool) or not isinstance(value, (int,)) and not (
      hasattr(value, "__index__")):
    if not (isinstance(value, float) and value.is_integer()):
      raise ArgumentError(f"{{{name}}} must be an integer >= {minimum}, got {value!r}.")
  if int(value) < minimum:
    raise ArgumentError(f"{{{name}}} must be an integer >= {minimum}, got {value!r}.")
  return int(value)


def check_choice(value, name: str, accepted) -> str:
  if value not in accepted:
    raise ArgumentError(f"{{{name}}}: unknown value {value!r}; accepted: {', '.join(accepted)}.")
  return value
