"""The low-budget table: test accuracy per label budget for every strategy (mean ± standard error
over seeds), the AUBC, and each strategy's paired difference from random.

  python -m jaxal.budget_table runs/lowbudget_fmnist/results.json [10,20,30,50,100,200]

Seeds of different strategies share their initial set (same seed, same split), so the difference
from random is taken seed by seed and its standard error is that of the paired differences; a
strategy is "ahead by more than two standard errors" at a budget when difference > 2 s.e.
"""
from __future__ import annotations

import json
import sys
from typing import Mapping, Sequence

import numpy as np

from jaxal.reporting import aubc, mean_and_stderr


def _by_seed(runs: Sequence[Mapping], strategy: str) -> dict[int, dict[int, float]]:
  """{seed: {labels: test accuracy}} of one strategy."""
  return {r["seed"]: {row["labels"]: row["test_accuracy"] for row in r["rounds"]}
          for r in runs if r["strategy"] == strategy}


def budget_table(runs: Sequence[Mapping], budgets: Sequence[int] | None = None,
                 baseline: str = "random") -> str:
  """Markdown: per strategy, accuracy mean ± s.e. at each budget (labels), AUBC ± s.e., and the
  paired difference from `baseline` at each budget (marked * when above 2 s.e.)."""
  names = list(dict.fromkeys(r["strategy"] for r in runs))
  first = _by_seed(runs, names[0])
  all_budgets = sorted(next(iter(first.values())))
  budgets = [b for b in (budgets or all_budgets) if b in all_budgets]
  base = _by_seed(runs, baseline) if baseline in names else None
  head = "| strategy | seeds | AUBC | " + " | ".join(f"{b} labels" for b in budgets) + " |"
  lines = [head, "|" + "---|" * (3 + len(budgets))]
  for name in names:
    seeds = _by_seed(runs, name)
    cells = []
    for b in budgets:
      acc = np.array([s[b] for s in seeds.values() if b in s])
      m, se = mean_and_stderr(acc)
      cell = f"{m:.3f} ± {se:.3f}"
      if base is not None and name != baseline:
        common = [k for k in seeds if k in base and b in seeds[k] and b in base[k]]
        d = np.array([seeds[k][b] - base[k][b] for k in common])
        dm, dse = mean_and_stderr(d)
        cell += f" ({dm:+.3f}{'*' if dse > 0 and dm > 2 * dse else ''})"
      cells.append(cell)
    per_seed = [aubc(sorted(s), [s[k] for k in sorted(s)]) for s in seeds.values()]
    am, ase = mean_and_stderr(np.array(per_seed))
    lines.append(f"| {name} | {len(seeds)} | {am:.3f} ± {ase:.3f} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  with open(argv[1]) as f:
    results = json.load(f)
  budgets = [int(b) for b in argv[2].split(",")] if len(argv) > 2 else None
  print(budget_table(results["runs"], budgets))


if __name__ == "__main__":
  main(sys.argv)
