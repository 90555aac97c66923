r"""PyTorch baselines for `experiments.benchmark`: the same protocols run with baal and plain PyTorch.

Not part of jaxal and not imported by it: run it with a separate interpreter that has PyTorch and
baal (`python -m venv /tmp/baal && /tmp/baal/bin/pip install torch==2.13.0 baal`), or let
`python -m experiments.benchmark fmnist-bald --torch_python=/tmp/baal/bin/python` call it.

  <torch python> experiments/torch_reference.py fmnist-bald --data_dir=<Fashion-MNIST IDX folder>
      [--rounds=10 --seeds=3 --out=baal.json]
  <torch python> experiments/torch_reference.py fmnist-bald-plain --data_dir=<...> [--init=flax]
  <torch python> experiments/torch_reference.py train-throughput [--repeats=3 --out=torch.json]
  <torch python> experiments/torch_reference.py train-parity --data_dir=<...> --sets=<sets.npz>

fmnist-bald: baal 2.x's own loop (ModelWrapper, ActiveLearningDataset, ActiveLearningLoop, the BALD
heuristic, MC dropout through `patch_module`) on Fashion-MNIST with the LeNet-5 that jaxal's
`lenet5` is (same layers, dropout 0.5 after the two hidden dense layers, per-channel standardised
inputs): 100 balanced initial labels, 10 per round, re-initialised and trained 50 epochs each round
(batch 64, SGD lr 0.01, momentum 0.9), BALD with 20 MC samples over the whole unlabeled pool, test
accuracy every round, then a final training on the last labels. Seconds per round are split into
train / score+select / evaluate.

fmnist-bald-plain: the same protocol in a plain PyTorch loop with jaxal's shared-trunk trick (the
network before its first dropout once per pool item, the head S times), batches of 1,024 under
`inference_mode`: the strongest baseline a PyTorch user would write (issue 21).

train-throughput: plain PyTorch training steps (forward, loss, backward, SGD step) over 1,024
labeled items in batches of 64, samples/s for one epoch (median over repeats, after one warm-up
epoch), for lenet5 (28x28x1) and cnn3 (32x32x3).

train-parity: fmnist-bald's training alone (Flax's initialisers), on the labeled sets that
`jaxal-benchmark train-parity` drew, for the test accuracy of each (jaxal trains on the same sets).

Prints one JSON object on the last line of stdout and writes it to --out when given.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class LeNet5(nn.Module):
  """jaxal.models.LeNet5: conv 6@5x5 same - pool - conv 16@5x5 valid - pool - 120 - 84 - C, ReLU,
  dropout after the two hidden dense layers."""

  def __init__(self, num_classes=10, dropout=0.5, channels=1):
    super().__init__()
    self.conv1 = nn.Conv2d(channels, 6, 5, padding=2)
    self.conv2 = nn.Conv2d(6, 16, 5)
    self.fc1 = nn.Linear(16 * 5 * 5, 120)
    self.fc2 = nn.Linear(120, 84)
    self.fc3 = nn.Linear(84, num_classes)
    self.drop = nn.Dropout(dropout)

  def forward(self, x):
    h = F.max_pool2d(F.relu(self.conv1(x)), 2)
    h = F.max_pool2d(F.relu(self.conv2(h)), 2)
    h = F.relu(self.fc1(h.flatten(1)))
    h = self.drop(F.relu(self.fc2(self.drop(h))))
    return self.fc3(h)


class CNN3(nn.Module):
  """jaxal.models.CNN3 on 32x32 inputs: three blocks of two 3x3 convs + pool, dense 128, dropout."""

  def __init__(self, num_classes=10, channels=3, filters=(32, 64, 128)):
    super().__init__()
    layers, c = [], channels
    for f in filters:
      layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU(), nn.Conv2d(f, f, 3, padding=1), nn.ReLU(),
                 nn.MaxPool2d(2)]
      c = f
    self.features = nn.Sequential(*layers)
    self.fc = nn.Linear(c * 4 * 4, 128)
    self.drop = nn.Dropout(0.5)
    self.classifier = nn.Linear(128, num_classes)

  def forward(self, x):
    h = F.relu(self.fc(self.features(x).flatten(1)))
    return self.classifier(self.drop(h))


def read_idx(path):
  with gzip.open(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fmnist(data_dir):
  x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
  y = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz")).astype(np.int64)
  xt = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
  yt = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
  mean, std = x.mean(), x.std()
  norm = lambda a: torch.from_numpy(((a - mean) / std)[:, None, :, :].copy())
  return norm(x), torch.from_numpy(y), norm(xt), torch.from_numpy(yt)


def balanced(y, n, rng, num_classes=10):
  per = n // num_classes
  return np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False)
                         for c in range(num_classes)])


def fmnist_bald(args):
  from baal.active import ActiveLearningDataset, ActiveLearningLoop
  from baal.active.heuristics import BALD
  from baal.bayesian.dropout import patch_module
  from baal.modelwrapper import ModelWrapper, TrainingArgs
  x, y, xt, yt = load_fmnist(args.data_dir)
  train_set = torch.utils.data.TensorDataset(x, y)
  test_set = torch.utils.data.TensorDataset(xt, yt)
  runs = []
  for seed in range(args.first_seed, args.first_seed + args.seeds):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    al = ActiveLearningDataset(train_set)
    al.label(balanced(y.numpy(), args.initial, rng).tolist())
    model = patch_module(LeNet5())   # dropout stays on at prediction: MC dropout
    cuda = torch.cuda.is_available()
    if cuda:
      model = model.cuda()
    training = TrainingArgs(optimizer=None, batch_size=64, epoch=args.epochs, use_cuda=cuda,
                            workers=0, criterion=nn.CrossEntropyLoss())
    wrapper = ModelWrapper(model, training)
    loop = ActiveLearningLoop(al, wrapper.predict_on_dataset, heuristic=BALD(),
                              query_size=args.query, iterations=args.mc_samples, max_sample=-1,
                              verbose=False)
    rounds = []
    t_run = time.perf_counter()
    for r in range(args.rounds + 1):
      for m in model.modules():   # a fresh initialisation every round, as jaxal's reinit
        if hasattr(m, "reset_parameters"):
          m.reset_parameters()
        if args.init == "flax" and isinstance(m, (nn.Conv2d, nn.Linear)):
          flax_init_(m)
      wrapper.args.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
      labels = int(al.n_labelled)
      t0 = time.perf_counter()
      wrapper.train_on_dataset(al)
      t1 = time.perf_counter()
      model.eval()
      correct = 0
      with torch.no_grad():
        for xb, yb in torch.utils.data.DataLoader(test_set, 1024):
          xb, yb = (xb.cuda(), yb.cuda()) if cuda else (xb, yb)
          correct += int((_deterministic(model, xb).argmax(1) == yb).sum())
      t2 = time.perf_counter()
      if r < args.rounds:
        loop.step()
      t3 = time.perf_counter()
      rounds.append({"round": r, "labels": labels,
                     "test_accuracy": correct / len(test_set), "train_seconds": t1 - t0,
                     "evaluate_seconds": t2 - t1, "score_select_seconds": t3 - t2,
                     "seconds": t3 - t0})
      print(f"baal seed {seed} round {r}: labels {rounds[-1]['labels']} acc "
            f"{rounds[-1]['test_accuracy']:.4f} train {t1 - t0:.1f}s eval {t2 - t1:.1f}s "
            f"score+select {t3 - t2:.1f}s", file=sys.stderr, flush=True)
    runs.append({"seed": seed, "rounds": rounds, "wall_seconds": time.perf_counter() - t_run})
  return {"workload": "fmnist-bald", "library": "baal", "torch": torch.__version__, "init": args.init,
          "threads": torch.get_num_threads(), "rounds": args.rounds, "runs": runs}


def train_sgd(model, x, y, idx, epochs):
  """fmnist-bald's training: `epochs` epochs over the items `idx` in a fresh random order each,
  batches of 64 (the last one partial), SGD lr 0.01 with momentum 0.9 from a fresh optimiser."""
  opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
  model.train()
  for _ in range(epochs):
    perm = idx[torch.randperm(len(idx))]
    for i in range(0, len(perm), 64):
      b = perm[i:i + 64]
      opt.zero_grad(set_to_none=True)
      F.cross_entropy(model(x[b]), y[b]).backward()
      opt.step()


def test_correct(model, xt, yt, chunk):
  """How many of the test images the network (in eval mode) classifies right."""
  model.eval()
  correct = 0
  with torch.inference_mode():
    for i in range(0, len(xt), chunk):
      correct += int((model(xt[i:i + chunk]).argmax(1) == yt[i:i + chunk]).sum())
  return correct


def fmnist_bald_plain(args):
  """The protocol of `fmnist_bald` as a skilled PyTorch user writes it without baal: the network
  up to its first dropout (convolutions and the first dense layer) computed once per pool item in
  batches of 1,024 under `inference_mode`, only the head after it run S times (the S dropout masks
  side by side as one batch), BALD, top K; training and evaluation in plain loops."""
  x, y, xt, yt = load_fmnist(args.data_dir)
  n = len(x)
  s_samples, chunk = args.mc_samples, 1024
  runs = []

  def trunk(model, xb):
    h = F.max_pool2d(F.relu(model.conv1(xb)), 2)
    h = F.max_pool2d(F.relu(model.conv2(h)), 2)
    return F.relu(model.fc1(h.flatten(1)))

  def head_samples(model, h):   # [B, 120] -> [S, B, C] with S dropout masks
    hs = F.dropout(h.unsqueeze(0).expand(s_samples, *h.shape), 0.5, training=True)
    hs = F.dropout(F.relu(model.fc2(hs)), 0.5, training=True)
    return F.softmax(model.fc3(hs), dim=-1)

  def bald(p):   # [S, B, C] -> [B]
    mean = p.mean(0)
    entropy = -(mean * torch.log(mean.clamp_min(1e-12))).sum(-1)
    expected = -(p * torch.log(p.clamp_min(1e-12))).sum(-1).mean(0)
    return entropy - expected

  for seed in range(args.first_seed, args.first_seed + args.seeds):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    labeled = np.zeros(n, bool)
    labeled[balanced(y.numpy(), args.initial, rng)] = True
    model = LeNet5()
    rounds = []
    t_run = time.perf_counter()
    for r in range(args.rounds + 1):
      for m in model.modules():
        if hasattr(m, "reset_parameters"):
          m.reset_parameters()
        if args.init == "flax" and isinstance(m, (nn.Conv2d, nn.Linear)):
          flax_init_(m)
      idx = torch.from_numpy(np.flatnonzero(labeled))
      t0 = time.perf_counter()
      train_sgd(model, x, y, idx, args.epochs)
      t1 = time.perf_counter()
      correct = test_correct(model, xt, yt, chunk)
      t2 = time.perf_counter()
      if r < args.rounds:
        pool = np.flatnonzero(~labeled)
        scores = torch.empty(len(pool))
        with torch.inference_mode():
          for i in range(0, len(pool), chunk):
            xb = x[torch.from_numpy(pool[i:i + chunk])]
            scores[i:i + chunk] = bald(head_samples(model, trunk(model, xb)))
        labeled[pool[torch.topk(scores, args.query).indices.numpy()]] = True
      t3 = time.perf_counter()
      rounds.append({"round": r, "labels": int(len(idx)), "test_accuracy": correct / len(xt),
                     "train_seconds": t1 - t0, "evaluate_seconds": t2 - t1,
                     "score_select_seconds": t3 - t2, "seconds": t3 - t0})
      print(f"torch seed {seed} round {r}: labels {len(idx)} acc {correct / len(xt):.4f} train "
            f"{t1 - t0:.1f}s eval {t2 - t1:.1f}s score+select {t3 - t2:.1f}s", file=sys.stderr,
            flush=True)
    runs.append({"seed": seed, "rounds": rounds, "wall_seconds": time.perf_counter() - t_run})
  return {"workload": "fmnist-bald-plain", "library": "torch (plain loop, shared trunk)",
          "torch": torch.__version__, "init": args.init, "threads": torch.get_num_threads(),
          "rounds": args.rounds, "runs": runs}


def train_parity(args):
  """LeNet-5 with Flax's initialisers trained as in fmnist-bald (epochs of batch 64, SGD lr 0.01,
  momentum 0.9) on each labeled set of --sets (an .npz of int64 indices into the training set,
  keys "<size>_<seed>", written by `jaxal-benchmark train-parity`), torch seeded with the seed;
  the test accuracy of each."""
  x, y, xt, yt = load_fmnist(args.data_dir)
  sets = np.load(args.sets)
  accuracy = {}
  for key in sets.files:
    torch.manual_seed(int(key.split("_")[1]))
    model = LeNet5()
    for m in model.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        flax_init_(m)
    train_sgd(model, x, y, torch.from_numpy(sets[key].astype(np.int64)), args.epochs)
    accuracy[key] = test_correct(model, xt, yt, 1024) / len(xt)
  return {"workload": "train-parity", "torch": torch.__version__, "epochs": args.epochs,
          "threads": torch.get_num_threads(), "accuracy": accuracy}


def flax_init_(m):
  """Flax's defaults, so both libraries train the same network: kernel ~ lecun_normal (a normal
  truncated at 2 standard deviations, rescaled to variance 1 / fan_in), bias 0."""
  fan_in = m.weight[0].numel()
  std = (1.0 / fan_in) ** 0.5 / 0.87962566103423978
  with torch.no_grad():
    nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
    if m.bias is not None:
      m.bias.zero_()


def _deterministic(model, xb):
  """A forward pass with every dropout off (baal's patched dropout ignores eval())."""
  saved = []
  for m in model.modules():
    if hasattr(m, "p") and "Dropout" in type(m).__name__:
      saved.append((m, m.p))
      m.p = 0.0
  try:
    return model(xb)
  finally:
    for m, p in saved:
      m.p = p


def train_throughput(args):
  rows = []
  for name, shape, net in (("lenet5", (1, 28, 28), LeNet5), ("cnn3", (3, 32, 32), CNN3)):
    torch.manual_seed(0)
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(1024, *shape)
    y = torch.randint(0, 10, (1024,))

    def epoch():
      model.train()
      perm = torch.randperm(1024)
      for i in range(0, 1024, 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()

    epoch()   # warm-up
    times = []
    for _ in range(args.repeats):
      t0 = time.perf_counter()
      epoch()
      times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rows.append({"model": name, "seconds_per_epoch": med, "all_seconds": times,
                 "samples_per_second": 1024 / med})
    print(f"torch {name}: {1024 / med:.0f} samples/s", file=sys.stderr, flush=True)
  return {"workload": "train-throughput", "library": "torch", "torch": torch.__version__,
          "threads": torch.get_num_threads(), "results": rows}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("workload", choices=("fmnist-bald", "fmnist-bald-plain", "train-throughput",
                                          "train-parity"))
  p.add_argument("--data_dir", default="")
  p.add_argument("--rounds", type=int, default=10)
  p.add_argument("--seeds", type=int, default=1)
  p.add_argument("--initial", type=int, default=100)
  p.add_argument("--query", type=int, default=10)
  p.add_argument("--epochs", type=int, default=50)
  p.add_argument("--mc_samples", type=int, default=20)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--init", choices=("torch", "flax"), default="torch",
                 help="fmnist-bald: PyTorch's default initialisation (what baal users get) or "
                      "Flax's (lecun_normal kernels, zero biases: the network jaxal trains)")
  p.add_argument("--first_seed", type=int, default=0,
                 help="fmnist-bald: run seeds first_seed, ..., first_seed + seeds - 1")
  p.add_argument("--threads", type=int, default=0,
                 help="torch intra-op threads (0: torch's default, one per core)")
  p.add_argument("--sets", default="", help="train-parity: the .npz of labeled sets")
  p.add_argument("--out", default="")
  args = p.parse_args(argv)
  if args.threads:
    torch.set_num_threads(args.threads)
  if args.workload == "train-parity" and not args.sets:
    p.error("--sets (the .npz of labeled sets written by jaxal-benchmark train-parity) is required")
  if args.workload in ("fmnist-bald", "fmnist-bald-plain", "train-parity") and not args.data_dir:
    p.error(f"--data_dir (the Fashion-MNIST IDX folder) is required for {args.workload}")
  out = {"fmnist-bald": fmnist_bald, "fmnist-bald-plain": fmnist_bald_plain,
         "train-throughput": train_throughput, "train-parity": train_parity}[args.workload](args)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
