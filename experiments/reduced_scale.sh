#!/usr/bin/env bash
# The papers' presets at the reduced scale measured on 2 CPU cores (BUILD_NOTES.md, "The papers'
# protocols at a reduced CPU scale"), then their reports.
#
#   bash experiments/reduced_scale.sh DATA OUT [NAME ...]
#
# DATA holds mnist/ and fashion_mnist/ (IDX gz) and cifar10-jpeg.zip; OUT receives one results
# directory per run and report_<name>/ per preset (relative paths are taken from the current
# directory; the script runs from the repository root). NAMEs (default: all): four_metrics,
# four_metrics_binary, four_metrics_folder, constrained, constrained_ideal, hybrid, cluster,
# cluster_mnist. Every run is the preset's command with smaller budgets: a class-stratified sample of the data (--train_limit,
# --test_limit), fewer labels per round and rounds, fewer epochs. Re-running resumes from the
# checkpoints of each results directory (times.txt then gets the resumed part's time only).
set -euo pipefail
DATA=$(realpath "${1:?usage: reduced_scale.sh DATA OUT [NAME ...]}")
OUT=$(realpath -m "${2:?usage: reduced_scale.sh DATA OUT [NAME ...]}")
shift 2
cd "$(dirname "$(realpath "$0")")/.."
NAMES=${*:-four_metrics four_metrics_binary four_metrics_folder constrained constrained_ideal hybrid \
  cluster cluster_mnist}
PY=${PYTHON:-python}
CACHE=${CACHE_DIR:-$OUT/cache}
SMALL="--train_limit=10000 --test_limit=2000"

run() {  # run WORKDIR ARGS...: one experiment, its wall time appended to $OUT/times.txt
  local work=$OUT/$1
  shift
  local t0=$SECONDS
  $PY -m jaxal.cli.run --workdir="$work" "$@"
  echo "$(basename "$work") $((SECONDS - t0)) s" >> "$OUT/times.txt"
}

mkdir -p "$OUT"
for name in $NAMES; do
  case $name in
    four_metrics)
      run four_metrics_mnist --preset=four_metrics_mnist --data_dir="$DATA/mnist" $SMALL \
        --initial_size=20 --query_size=20 --rounds=8 --epochs=20 --val_size=100
      $PY -m jaxal.cli.report "$OUT/four_metrics_mnist" --out="$OUT/report_four_metrics" \
        --targets=0.8,0.9 ;;
    four_metrics_binary)
      run four_metrics_mnist_01 --preset=four_metrics_mnist --data_dir="$DATA/mnist" \
        --classes=0,1 --train_limit=4000 --test_limit=1000 --initial_size=2 --query_size=2 \
        --rounds=6 --epochs=20 --val_size=20
      $PY -m jaxal.cli.report "$OUT/four_metrics_mnist_01" --out="$OUT/report_four_metrics_01" \
        --targets=0.95,0.99 ;;
    four_metrics_folder)   # the fruit preset's path (image folder + super-class map) on CIFAR-10
      cat > "$OUT/vehicles_animals.json" <<'MAP'
{"vehicle": ["airplane", "automobile", "ship", "truck"],
 "animal": ["bird", "cat", "deer", "dog", "frog", "horse"]}
MAP
      run four_metrics_folder --preset=four_metrics_fruits --data_dir="$DATA/cifar10-jpeg.zip" \
        --cache_dir="$CACHE" --class_map="$OUT/vehicles_animals.json" $SMALL --initial_size=20 \
        --query_size=20 --rounds=5 --epochs=20 --val_size=100
      $PY -m jaxal.cli.report "$OUT/four_metrics_folder" --out="$OUT/report_four_metrics_folder" ;;
    constrained)
      dirs=()
      for ds in mnist fashion_mnist; do
        for noise in none gaussian salt_and_pepper; do
          run "constrained_${ds}_${noise}" --preset=constrained_mnist --data_dir="$DATA/$ds" \
            $SMALL --noise=$noise --rounds=10 --mc_samples=10
          dirs+=("$OUT/constrained_${ds}_${noise}")
        done
      done
      run constrained_cifar10_none --preset=constrained_mnist --dataset=folder \
        --data_dir="$DATA/cifar10-jpeg.zip" --cache_dir="$CACHE" $SMALL --rounds=10 \
        --mc_samples=10
      dirs+=("$OUT/constrained_cifar10_none")
      $PY -m jaxal.cli.report "${dirs[@]}" --out="$OUT/report_constrained" --per_class=false ;;
    constrained_ideal)
      run constrained_ideal_mnist --preset=constrained_ideal --data_dir="$DATA/mnist" $SMALL \
        --initial_size=200 --query_size=200 --rounds=4 --val_size=1000 --mc_samples=10
      $PY -m jaxal.cli.report "$OUT/constrained_ideal_mnist" --out="$OUT/report_constrained_ideal" \
        --per_class=false ;;
    hybrid)
      run hybrid_cifar10 --preset=hybrid_cifar10 --data_dir="$DATA/cifar10-jpeg.zip" \
        --cache_dir="$CACHE" $SMALL --initial_size=200 --query_size=200 --rounds=4 --epochs=10 \
        --val_size=500 --val_every=2
      $PY -m jaxal.cli.report "$OUT/hybrid_cifar10" --out="$OUT/report_hybrid" ;;
    cluster)
      run cluster_cifar10 --preset=cluster_cifar10 --data_dir="$DATA/cifar10-jpeg.zip" \
        --cache_dir="$CACHE" $SMALL --initial_size=200 --query_size=50 --clusters_per_round=10 \
        --cluster_size=100 --rounds=4 --epochs=10 --val_size=500 --val_every=2
      $PY -m jaxal.cli.report "$OUT/cluster_cifar10" --out="$OUT/report_cluster" ;;
    cluster_mnist)   # the five scenarios where a CNN's clusters can be pure (LeNet-5 for speed)
      run cluster_mnist --preset=cluster_cifar10 --dataset=idx --data_dir="$DATA/mnist" \
        --model=lenet5 $SMALL --initial_size=20 --query_size=20 --clusters_per_round=10 \
        --cluster_size=100 --rounds=4 --epochs=20 --val_size=100
      $PY -m jaxal.cli.report "$OUT/cluster_mnist" --out="$OUT/report_cluster_mnist" ;;
    *)
      echo "reduced_scale.sh: unknown name '$name'; accepted: four_metrics four_metrics_binary" \
        "four_metrics_folder" \
        "constrained constrained_ideal hybrid cluster cluster_mnist" >&2
      exit 2 ;;
  esac
done
