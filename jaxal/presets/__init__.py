"""Presets: one Python file per protocol, each with `get_config() -> ConfigDict`.

`--preset=NAME` loads `jaxal/presets/NAME.py`; explicit command-line flags override its values.
"""
from __future__ import annotations

import importlib
import pkgutil

import ml_collections

from jaxal.errors import ArgumentError


def available() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> ml_collections.ConfigDict:
  """The preset's config (a full set of settings: it starts from `default` and changes some)."""
  if name not in available():
    raise ArgumentError(f"{{preset}}: unknown preset {name!r}; accepted: {', '.join(available())}.")
  return importlib.import_module(f"{__name__}.{name}").get_config()
