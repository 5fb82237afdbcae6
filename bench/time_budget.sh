#!/usr/bin/env bash
# Validation accuracy after a training-time budget (--time-budget), per budget, split seed and
# recipe, on a dataset with a groups CSV: the tables in docs/results.md. One line per run.
#
#   bench/time_budget.sh [DATA]     BUDGETS="15 30 60 120" SEEDS="0 1 2" THREADS=2
#   RECIPES as NAME=FLAGS entries separated by ';', e.g.
#   RECIPES="default=--image-size 64;cpu-fast=--recipe cpu-fast"
#   PEER=../shared/peers/torch_reference.py  also runs the Python peer on each run's split (the
#       first recipe's train/validation lists, as folders of links) with PEER_FLAGS, for as many
#       steps as fit in the budget: its start (DataLoader workers) and seconds per step come from
#       two short runs of PEER_CALIBRATION and 3 x PEER_CALIBRATION steps.
# DATA holds lung_colon_image_set/ and groups.csv (default ../shared/data/lc25000-dev).
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:-../shared/data/lc25000-dev}
BUDGETS=${BUDGETS:-15 30 60 120}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-$(nproc)}
RECIPES=${RECIPES:-cpu-fast=--recipe cpu-fast;default=--image-size 64}
PEER=${PEER:-}
PEER_FLAGS=${PEER_FLAGS:---image-size 48 --batch-size 32 --lr 0.05}
PEER_CALIBRATION=${PEER_CALIBRATION:-20}
PYTHON=${PYTHON:-/usr/bin/python3}
BIN=build/histotrain
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CACHE=${HISTOTRAIN_CACHE:-$WORK/cache}   # tile caches are built once, outside the budget
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads $THREADS; $($BIN info | sed -n 's/^BLAS *//p')"

# Folders of links to the tiles a run's list names, one folder per class: the peer's layout.
link_split() {  # LIST DIR
  while IFS= read -r tile; do
    local class; class=$(basename "$(dirname "$tile")")
    mkdir -p "$2/$class"
    ln -sf "$(realpath "$tile")" "$2/$class/"
  done <"$1"
}

# The peer's training seconds for a number of steps (its data loading included).
peer_seconds() {  # STEPS
  read -ra flags <<<"$PEER_FLAGS"
  "$PEER_PYTHON" "$PEER" --data "$DATA/lung_colon_image_set" --threads "$THREADS" --max-steps "$1" \
      "${flags[@]}" 2>/dev/null | sed -n 's/^RESULT //p' |
    "$PYTHON" -c 'import json,sys; print(json.loads(sys.stdin.read())["train_s"])'
}

run_peer() {  # BUDGET SEED RUN_FOLDER
  local split=$WORK/peer-split-$2 steps
  if [ ! -d "$split" ]; then
    link_split "$3/train_images.txt" "$split/train"
    link_split "$3/val_images.txt" "$split/val"
  fi
  steps=$("$PYTHON" -c "print(max(1, round(($1 - $PEER_START_S) / $PEER_STEP_S)))")
  read -ra flags <<<"$PEER_FLAGS"
  "$PEER_PYTHON" "$PEER" --data "$split/train" --test-data "$split/val" --threads "$THREADS" --max-steps "$steps" \
      --epochs 1000 "${flags[@]}" 2>/dev/null | sed -n 's/^RESULT //p' | "$PYTHON" -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"{'peer':12s} budget {$1:>4d} s  seed $2  train_s {r['train_s']:6.1f}  command_s {'':>6s}  steps {r['steps']:5d}  val_acc {r['test_acc']:.4f}\")"
}

if [ -n "$PEER" ]; then
  short=$(peer_seconds "$PEER_CALIBRATION")
  long=$(peer_seconds $((3 * PEER_CALIBRATION)))
  PEER_STEP_S=$("$PYTHON" -c "print(max(1e-3, ($long - $short) / (2 * $PEER_CALIBRATION)))")
  PEER_START_S=$("$PYTHON" -c "print(max(0.0, $short - $PEER_CALIBRATION * $PEER_STEP_S))")
  echo "peer: $PEER_FLAGS; $PEER_STEP_S s per step after a start of $PEER_START_S s"
fi
IFS=';' read -ra recipes <<<"$RECIPES"
for budget in $BUDGETS; do
  for seed in $SEEDS; do
    first_run=""
    for recipe in "${recipes[@]}"; do
      name=${recipe%%=*}
      read -ra flags <<<"${recipe#*=}"
      out=$WORK/$name-$budget-$seed
      first_run=${first_run:-$out}
      if ! "$BIN" train --data "$DATA/lung_colon_image_set" --groups "$DATA/groups.csv" --seed "$seed" \
          --time-budget "$budget" --val-every 1000000 --threads "$THREADS" --quiet --cache-dir "$CACHE" \
          --out "$out" "${flags[@]}" >/dev/null 2>"$out.log"; then
        echo "$name budget $budget seed $seed: FAILED"; tail -3 "$out.log"; continue
      fi
      "$PYTHON" - "$out/summary.json" "$name" "$budget" "$seed" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
name, budget, seed = sys.argv[2:]
print(f"{name:12s} budget {budget:>4s} s  seed {seed}  train_s {s['train_s']:6.1f}  command_s {s['command_s']:6.1f}"
      f"  steps {s['steps']:5d}  val_acc {s['val']['accuracy']:.4f}")
PY
    done
    [ -n "$PEER" ] && [ -f "$first_run/train_images.txt" ] && run_peer "$budget" "$seed" "$first_run"
  done
done
