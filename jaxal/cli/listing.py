"""What the command line accepts, one line each: strategies, models, presets and datasets, for
`--help` and `--list=strategies|models|presets|datasets`."""
from __future__ import annotations

import importlib

from jaxal import models, presets, registry

KINDS = ("strategies", "models", "presets", "datasets")

_DATASETS = {
    "digits": "scikit-learn's 8x8 digits, embedded (the default; no --data_dir)",
    "idx": "MNIST / Fashion-MNIST IDX files in --data_dir",
    "folder": "an image folder or .zip in --data_dir: [split/]class/*.jpg|png",
    "npz": "an .npz in --data_dir: x_train, y_train, x_test, y_test[, class_names]",
    "npy": "a folder of .npy in --data_dir: train_images (memory-mapped), train_labels, test_*",
    "tfds:<name>": "a prepared TensorFlow Datasets catalogue entry (--data_dir: its data_dir)",
}

STRATEGIES = {
    "random": "uniformly at random (the baseline)",
    "least_confidence": "top K of 1 - max p",
    "margin": "top K of the smallest margin between the two most probable classes",
    "largest_margin": "top K of the smallest margin between the most and least probable class",
    "entropy": "top K of the predictive entropy",
    "bald": "top K of BALD, the mutual information of label and weights (needs samples)",
    "variation_ratios": "top K of 1 - modal votes / S (needs samples)",
    "mean_std": "top K of the mean standard deviation over samples (needs samples)",
    "hybrid": "top alpha K by --hybrid_score, k-means on them, the rest near the centroids",
    "hybrid_balanced": "hybrid, with the rest spread evenly over the clusters",
    "cluster": "cluster annotation: whole k-means clusters shown to an expert (--purity)",
    "batchbald": "BatchBALD, greedy joint mutual information (Kirsch et al. 2019)",
    "power_bald": "power sampling of BALD (Kirsch et al. 2023)",
    "power_entropy": "power sampling of entropy (Kirsch et al. 2023)",
    "coreset": "k-center greedy on the penultimate features (Sener & Savarese 2018)",
    "badge": "k-means++ on gradient embeddings (Ash et al. 2020)",
    "typiclust": "most typical item of the largest uncovered clusters (Hacohen et al. 2022)",
    "probcover": "greedy max coverage of feature balls (Yehuda et al. 2022)",
    "cluster_margin": "lowest-margin items, clustered, round robin (Citovsky et al. 2021)",
    "kmeans": "the item nearest each of K k-means centroids of the unlabeled features",
    "margin_cluster_mean": "lowest margin weighted towards cluster means",
    "<score>+cluster": "K images by a score (or random), then clusters for the expert",
    "cluster+<score>": "clusters for the expert, then K images by a score (or random)",
}

MODELS = {
    "mlp": "multilayer perceptron with dropout",
    "lenet5": "LeNet-5 with dropout (images of at least 12x12)",
    "cnn3": "the hybrid paper's 3-block CNN",
    "gal_cnn": "Gal et al. (2017)'s MNIST CNN",
    "gal_cnn_code": "the network of Gal et al.'s released script (3x3 convs, 5x5 pool, dense 256)",
    "cnn2_bn": "the four-metrics paper's 2-conv CNN with batch norm",
    "resnet18": "ResNet-18 with the 32x32 (CIFAR) stem",
    "resnet18_imagenet": "ResNet-18 with the ImageNet stem (--pretrained weights)",
    "linear": "a linear classifier on embeddings (--train=linear with --encoder or --features)",
    "mlp_head": "one hidden layer with dropout on embeddings (--train=linear)",
}


def _preset_line(name: str) -> str:
  doc = (importlib.import_module(f"{presets.__name__}.{name}").__doc__ or "").strip()
  line = " ".join(doc.split())
  for stop in (": ", "; ", ". "):
    line = line.split(stop)[0]
  return line if len(line) <= 90 else line[:89].rstrip() + "…"


def entries(kind: str) -> list[tuple[str, str]]:
  """(name, one-line description) of every accepted value of `kind`."""
  if kind == "strategies":
    return [(n, STRATEGIES[n]) for n in registry.names()]
  if kind == "models":
    return [(n, MODELS[n]) for n in models.MODELS]
  if kind == "presets":
    return [(n, _preset_line(n)) for n in presets.available()]
  if kind == "datasets":
    return list(_DATASETS.items())
  raise ValueError(f"--list: unknown value {kind!r}; accepted: {', '.join(KINDS)}.")


def text(kinds=KINDS) -> str:
  lines = []
  for kind in kinds:
    rows = entries(kind)
    width = max(len(n) for n, _ in rows)
    lines.append(f"{kind}:")
    lines += [f"  {n:<{width}}  {d}" for n, d in rows]
  return "\n".join(lines)
