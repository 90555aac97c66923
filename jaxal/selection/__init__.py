"""Selection algorithms: pure, jittable functions from scores, features and masks to K pool indices,
one module per algorithm over shared primitives.

  primitives           top_k, random_select, argmax_free (masked argmax), l2_normalize,
                       sample_proportional, complete, nearest_to_centroids, chunked_map
  batchbald            greedy BatchBALD (Kirsch, van Amersfoort & Gal 2019)
  power                stochastic power acquisition (Kirsch et al. 2023)
  coreset              core-set by greedy k-center (Sener & Savarese 2018)
  badge                BADGE: k-means++ seeding on gradient embeddings (Ash et al. 2020)
  kmeans_select        the candidate nearest each k-means centroid (DeepAL's KMeansSampling)
  margin_cluster_mean  medoids of clusters inside the margin (Xu, Akella & Zhang 2003)
  cluster_margin       Cluster-Margin: average linkage and round robin (Citovsky et al. 2021)
  typiclust            TypiClust (Hacohen, Dekel & Weinshall 2022)
  probcover            ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022)
  hybrid               hybrid uncertainty + k-means selection (hybrid_select)
  cluster              cluster-based annotation: cluster_expert, show_clusters

Conventions: `features` float [N, D]; `candidates` bool [N] (unlabeled and selectable); `labeled`
bool [N]; `k` static. Each selection returns int32 [k] distinct candidate indices (as long as at
least k candidates exist).

This package imports none of its modules (import `jaxal.selection.<module>`). Its modules import
only `jaxal.kmeans` and `primitives`, and `primitives` imports nothing from jaxal, so any module
(`jaxal.kmeans`, `jaxal.training`, `jaxal.strategies`) can import them without a cycle.
"""
