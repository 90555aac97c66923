"""The one name -> strategy table, for the command line and presets.

The library itself never looks strategies up by name: a round is made from strategy values
(`jaxal.strategies`). This table turns the names of `--strategies` and the flat settings of a preset
into those values. Besides the names below, `<score>+cluster` and `cluster+<score>` (any score, or
`random`) compose cluster annotation with an image strategy.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from jaxal import scoring
from jaxal import strategies as st
from jaxal.errors import ArgumentError

# name -> factory(settings) where settings is the flat configuration (flags / preset keys).
Settings = Mapping[str, Any]

STRATEGIES: dict[str, Callable[[Settings], Any]] = {
    "random": lambda s: st.random(),
    "least_confidence": lambda s: st.least_confidence(),
    "margin": lambda s: st.margin(),
    "largest_margin": lambda s: st.largest_margin(),
    "entropy": lambda s: st.entropy(),
    "bald": lambda s: st.bald(),
    "variation_ratios": lambda s: st.variation_ratios(),
    "mean_std": lambda s: st.mean_std(),
    "hybrid": lambda s: st.hybrid(_score(s["hybrid_score"]), alpha=float(s["alpha"]),
                                  n_clusters=int(s["n_clusters"])),
    "hybrid_balanced": lambda s: st.hybrid(_score(s["hybrid_score"]), alpha=float(s["alpha"]),
                                           n_clusters=int(s["n_clusters"]), balanced=True),
    "cluster": lambda s: _cluster(s, None, True),
    "batchbald": lambda s: st.batchbald(num_configs=int(s["batchbald_configs"])),
    "power_bald": lambda s: st.power(st.bald(), beta=float(s["power_beta"])),
    "power_entropy": lambda s: st.power(st.entropy(), beta=float(s["power_beta"])),
    "coreset": lambda s: st.coreset(),
    "badge": lambda s: st.badge(),
    "typiclust": lambda s: st.typiclust(max_clusters=int(s["typiclust_max_clusters"]),
                                        neighbors=int(s["typiclust_neighbors"]),
                                        graph_subset=int(s["graph_subset"])),
    "probcover": lambda s: st.probcover(delta=float(s["probcover_delta"]),
                                        purity=float(s["probcover_purity"]),
                                        graph_subset=int(s["graph_subset"])),
    "cluster_margin": lambda s: st.cluster_margin(factor=float(s["cluster_margin_factor"]),
                                                  threshold=float(s["cluster_margin_threshold"])),
    "kmeans": lambda s: st.kmeans(),
    "margin_cluster_mean": lambda s: st.margin_cluster_mean(),
}

# Strategy parameter -> the setting (flag) that sets it, for messages in the command line's words.
PARAMETER_SETTINGS = {
    "hybrid.alpha": "alpha", "hybrid.n_clusters": "n_clusters", "hybrid.score": "hybrid_score",
    "batchbald.num_configs": "batchbald_configs", "power.beta": "power_beta",
    "typiclust.max_clusters": "typiclust_max_clusters",
    "typiclust.neighbors": "typiclust_neighbors", "typiclust.graph_subset": "graph_subset",
    "probcover.graph_subset": "graph_subset", "probcover.delta": "probcover_delta",
    "probcover.purity": "probcover_purity", "cluster_margin.factor": "cluster_margin_factor",
    "cluster_margin.threshold": "cluster_margin_threshold",
    "cluster_annotation.purity": "purity",
    "cluster_annotation.clusters_per_round": "clusters_per_round",
    "cluster_annotation.cluster_size": "cluster_size", "clusters_per_round": "clusters_per_round",
    "cluster_size": "cluster_size", "hybrid_score": "hybrid_score",
}

_IMAGE_SCORES = ("random",) + tuple(scoring.SAMPLE_SCORES)


def _score(name: str) -> st.Strategy:
  if name not in scoring.SAMPLE_SCORES:
    raise ArgumentError(f"{{hybrid_score}}: unknown score {name!r}; accepted: "
                        f"{', '.join(scoring.SAMPLE_SCORES)}.")
  return STRATEGIES[name]({})


def _cluster(s: Settings, images: str | None, images_first: bool) -> st.ClusterAnnotation:
  return st.cluster_annotation(purity=float(s["purity"]),
                               clusters_per_round=int(s["clusters_per_round"]),
                               cluster_size=int(s["cluster_size"]),
                               images=None if images is None else STRATEGIES[images]({}),
                               images_first=images_first)


def names() -> list[str]:
  """Every accepted name (the compositions as patterns)."""
  return list(STRATEGIES) + ["<score>+cluster", "cluster+<score>"]


def parse(name: str) -> tuple[str, str | None, bool]:
  """(base name, image score or None, images first) of a strategy name; ArgumentError if unknown."""
  if name in STRATEGIES:
    return name, None, True
  parts = name.split("+")
  if len(parts) == 2 and "cluster" in parts and parts[0] != parts[1]:
    other = parts[1] if parts[0] == "cluster" else parts[0]
    if other in _IMAGE_SCORES:
      return "cluster", other, parts[1] == "cluster"
  raise ArgumentError(f"{{strategies}}: unknown strategy {name!r}; accepted: "
                      f"{', '.join(names())} (any score: {', '.join(_IMAGE_SCORES)}).")


def strategy(name: str, settings: Settings) -> st.Strategy | st.ClusterAnnotation:
  """The strategy value `name` stands for, with its settings read from the flat `settings`."""
  base, images, first = parse(name)
  if images is not None:
    return _cluster(settings, images, first)
  return STRATEGIES[base](settings)
