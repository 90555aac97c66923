"""The low-budget table (jaxal.budget_table) against hand-computed means, standard errors, paired
differences and AUBC."""
import numpy as np

from jaxal.budget_table import budget_table


def _runs(strategy, accs):
  return [{"strategy": strategy, "seed": s,
           "rounds": [{"labels": b, "test_accuracy": a} for b, a in zip((10, 20, 30), row)]}
          for s, row in enumerate(accs)]


def test_table_cells_are_mean_stderr_and_paired_difference():
  rand = [[0.5, 0.6, 0.7], [0.5, 0.62, 0.66], [0.4, 0.58, 0.7]]
  good = [[0.5, 0.7, 0.8], [0.5, 0.71, 0.8], [0.4, 0.69, 0.5]]
  table = budget_table(_runs("random", rand) + _runs("good", good))
  rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[2:]}
  g = np.array(good)
  d = g - np.array(rand)
  se = lambda v: np.std(v, ddof=1) / np.sqrt(len(v))
  assert f"{g[:, 1].mean():.3f} ± {se(g[:, 1]):.3f} ({d[:, 1].mean():+.3f}*)" in rows["good"]
  # at 30 labels the paired difference (0.1, 0.14, -0.2) is within 2 s.e.: no star
  assert f"({d[:, 2].mean():+.3f})" in rows["good"]
  au = [((row[0] + row[1]) * 10 + (row[1] + row[2]) * 10) / 2 / 20 for row in good]
  assert f"| good | 3 | {np.mean(au):.3f} ± {se(au):.3f} |" in rows["good"]
  assert "(+" not in rows["random"]
