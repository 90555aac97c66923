r"""ProbCover's radius against its purity threshold, on a pool's self-supervised embeddings: a quick
proxy of the low-budget protocol (no active-learning loop; NOTES19.md).

For each of `--repeats` random subsets of `--subset` training items (the strategy's `--graph_subset`
working set): the embeddings standardised with training statistics and L2-normalised (what
`--train=linear` and ProbCover see), the radius `probcover_delta` at each purity in `--purities`,
ProbCover's greedy picks from no labels (`probcover_select`), and the test accuracy of a logistic
regression (scikit-learn, C=10) on the first 10, 20 and 30 picks with their true labels; random
picks of the whole pool for scale. Also the share of the subset covered by the first 10 and 30
balls. Uses the test labels: a value chosen with it is tuned on that dataset (choose on one dataset,
check on another).

  python -m experiments.probcover_radius --data_dir=<IDX folder> --embeddings=<embeddings.npy>
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.linear_model import LogisticRegression

from jaxal.data import load_dataset
from jaxal.selection.primitives import l2_normalize
from jaxal.selection.probcover import probcover_delta, probcover_select

BUDGETS = (10, 20, 30)


def accuracy(x, y, xt, yt, idx) -> float:
  if len(set(y[idx].tolist())) < 2:
    return float(np.mean(yt == y[idx][0]))
  return float(np.mean(LogisticRegression(C=10, max_iter=2000).fit(x[idx], y[idx]).predict(xt)
                       == yt))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data_dir", required=True)
  p.add_argument("--embeddings", required=True, help="[N_train + N_test, D] from jaxal-pretrain")
  p.add_argument("--subset", type=int, default=5000)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--purities", default="0.99,0.95,0.9,0.8,0.7,0.6,0.5")
  a = p.parse_args()
  ds = load_dataset("idx", a.data_dir)
  y, yt = np.asarray(ds.y_train), np.asarray(ds.y_test)
  emb = np.load(a.embeddings).astype(np.float32)
  x, xt = emb[:len(y)], emb[len(y):]
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 0, std, 1.0)
  x, xt = (x - mean) / std, (xt - mean) / std
  xn = np.asarray(l2_normalize(jnp.asarray(x)))
  purities = [float(v) for v in a.purities.split(",")]
  rows = {q: [] for q in purities}
  for rep in range(a.repeats):
    rng = np.random.default_rng(rep)
    sub = np.sort(rng.choice(len(y), a.subset, replace=False))
    f = jnp.asarray(xn[sub])
    valid = jnp.ones(a.subset, bool)
    key = jax.random.PRNGKey(rep)
    for q in purities:
      delta = float(probcover_delta(key, f, valid, ds.num_classes, q))
      picks = np.asarray(probcover_select(key, f, valid, ~valid, max(BUDGETS), delta=delta))
      d2 = ((xn[sub][:, None] - xn[sub][picks][None]) ** 2).sum(-1)
      cover = [float(np.mean((d2[:, :b] < delta ** 2).any(1))) for b in (10, 30)]
      rows[q].append([accuracy(x, y, xt, yt, sub[picks[:b]]) for b in BUDGETS] + cover + [delta])
  rand = np.mean([[accuracy(x, y, xt, yt, np.random.default_rng(100 + i).choice(len(y), b, False))
                   for b in BUDGETS] for i in range(4 * a.repeats)], 0)
  print(f"| purity | delta | acc@10 | acc@20 | acc@30 | covered@10 | covered@30 |\n|---|---|---|---|"
        f"---|---|---|\n| random ({4 * a.repeats} draws) | - | {rand[0]:.3f} | {rand[1]:.3f} | "
        f"{rand[2]:.3f} | - | - |")
  for q in purities:
    m = np.mean(rows[q], 0)
    print(f"| {q} | {m[5]:.3f} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} | {m[4]:.3f} |")


if __name__ == "__main__":
  main()
