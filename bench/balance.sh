#!/usr/bin/env bash
# --balance none | sampler | loss on a deliberately imbalanced synthetic set, the same epochs
# each, evaluated on an independent balanced test set: the table in docs/results.md.
#
#   bench/balance.sh      EPOCHS=8 SIZE=48 MAJORITY=200 MINORITY=20 SEEDS="1 2 3" THREADS=2
# The training set holds MAJORITY tiles of lung_aca and MINORITY of every other class (10:1 by
# default); the test set 40 tiles of each class from other scenes. One line per run.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-8}
SIZE=${SIZE:-48}
MAJORITY=${MAJORITY:-200}
MINORITY=${MINORITY:-20}
SEEDS=${SEEDS:-1 2 3}
THREADS=${THREADS:-$(nproc)}
BIN=build/histotrain
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads $THREADS"
echo "train: lung_aca $MAJORITY tiles, other classes $MINORITY each; $EPOCHS epochs at $SIZE px; test: 40 per class"
"$BIN" synth --out "$WORK/test" --per-class 40 --size 128 --seed 99 --copies 1 >/dev/null 2>&1
printf '%-6s %-8s %9s %9s %9s %9s\n' seed balance accuracy balanced macro_f1 macro_auc
for seed in $SEEDS; do
  "$BIN" synth --out "$WORK/train-$seed" --per-class "$MAJORITY" --size 128 --seed "$seed" >/dev/null 2>&1
  # Keep the first MINORITY tiles (by name) of every class but lung_aca.
  for dir in "$WORK/train-$seed"/lung_colon_image_set/*/*/; do
    [ "$(basename "$dir")" = lung_aca ] && continue
    ls "$dir" | sort | tail -n +"$((MINORITY + 1))" | while read -r f; do rm "$dir/$f"; done
  done
  for balance in none sampler loss; do
    "$BIN" train --data "$WORK/train-$seed" --groups "$WORK/train-$seed/groups.csv" --image-size "$SIZE" \
      --epochs "$EPOCHS" --batch-size 32 --threads "$THREADS" --seed "$seed" --balance "$balance" \
      --cache-dir "$WORK/cache" --quiet --out "$WORK/run-$seed-$balance" >/dev/null 2>"$WORK/log"
    "$BIN" eval --checkpoint "$WORK/run-$seed-$balance" --data "$WORK/test" --groups "$WORK/test/groups.csv" \
      --cache-dir "$WORK/cache" --bootstrap 0 --json --quiet >"$WORK/eval.json"
    /usr/bin/python3 - "$seed" "$balance" "$WORK/eval.json" <<'PY'
import json, sys
seed, balance, path = sys.argv[1:4]
r = json.load(open(path))
print(f"{seed:<6} {balance:<8} {r['accuracy']:9.4f} {r['balanced_accuracy']:9.4f} {r['macro_f1']:9.4f} {r['macro_auc']:9.4f}")
PY
  done
done
