"""The command line: `jaxal-run` (`run`), `jaxal-report` (`report`), `jaxal-benchmark`
(`benchmark`, workloads in `benchmarks/`); presets are `jaxal.presets`. Each is also
`python -m experiments.<name>` from the repository's root."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

HELP = ("--help", "-h", "--helpshort", "-?")


def start(main: Callable, module: str, argv: Sequence[str] | None = None, extra: str = "") -> None:
  """Runs an absl `main`; `--help` prints the module's docstring, `extra` and its flags, and exits
  0 (absl's own `--help` exits 1)."""
  from absl import app, flags  # pylint: disable=import-outside-toplevel
  argv = list(sys.argv if argv is None else argv)
  if any(a in HELP for a in argv[1:]):
    mod = sys.modules[module]
    print((mod.__doc__ or "").strip() + "\n")
    if extra:
      print(extra + "\n")
    print(flags.FLAGS.module_help(mod))
    sys.exit(0)
  app.run(main, argv=argv)
