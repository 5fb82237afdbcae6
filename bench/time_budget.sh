#!/usr/bin/env bash
# Validation accuracy after a training-time budget (--time-budget), per budget, split seed and
# recipe, on a dataset with a groups CSV: the table in docs/results.md. One line per run.
#
#   bench/time_budget.sh [DATA]     BUDGETS="15 30 60 120" SEEDS="0 1 2" THREADS=2
#   RECIPES as NAME=FLAGS entries separated by ';', e.g.
#   RECIPES="default=;32px=--image-size 32 --warmup-epochs 0.1"
# DATA holds lung_colon_image_set/ and groups.csv (default ../shared/data/lc25000-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev}
BUDGETS=${BUDGETS:-15 30 60 120}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-$(nproc)}
RECIPES=${RECIPES:-default=--image-size 64;32px=--image-size 32 --warmup-epochs 0.1}
BIN=build/histotrain
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CACHE=${HISTOTRAIN_CACHE:-$WORK/cache}   # tile caches are built once, outside the budget
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads $THREADS"
IFS=';' read -ra recipes <<<"$RECIPES"
for budget in $BUDGETS; do
  for seed in $SEEDS; do
    for recipe in "${recipes[@]}"; do
      name=${recipe%%=*}
      read -ra flags <<<"${recipe#*=}"
      out=$WORK/$name-$budget-$seed
      if ! "$BIN" train --data "$DATA/lung_colon_image_set" --groups "$DATA/groups.csv" --seed "$seed" \
          --time-budget "$budget" --val-every 1000000 --threads "$THREADS" --quiet --cache-dir "$CACHE" \
          --out "$out" "${flags[@]}" >/dev/null 2>"$out.log"; then
        echo "$name budget $budget seed $seed: FAILED"; tail -3 "$out.log"; continue
      fi
      python3 - "$out/summary.json" "$name" "$budget" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
name, budget, seed = sys.argv[2:]
print(f"{name:12s} budget {budget:>4s} s  seed {seed}  train_s {s['train_s']:6.1f}  command_s {s['command_s']:6.1f}"
      f"  steps {s['steps']:5d}  val_acc {s['val']['accuracy']:.4f}")
PY
    done
  done
done
