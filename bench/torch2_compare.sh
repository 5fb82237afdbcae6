#!/usr/bin/env bash
# histotrain built on Debian's LibTorch 1.13 and on PyPI's 2.11, next to the Python peer under
# PyTorch 1.13 (eager) and 2.11 (eager, and torch.compile'd), in one run on one machine: serial
# training of ResNet-18, batch 32, on real tiles.
#
#   bench/torch2_compare.sh [DATA]      (DATA: default ../shared/data/lc25000-dev)
#   STEPS=30 WARMUP=5 SIZES="64 128" THREADS=2 bench/torch2_compare.sh
#   BF16_STEPS=8: steps of the bf16 rows (bf16 without AVX-512 BF16 runs at a few images/s)
#
# Needs build/histotrain (./run.sh build) and build-torch2-cuda/histotrain with its environment
# (bench/torch2_build.sh). Figures: images/s = images / training time, first steps included, for
# every row; the peer's rows also give the rate after its first WARMUP steps, and for the compiled
# peer the compile time (the warm-up steps' time less what they take once compiled).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev}
PEER=${PEER:-../shared/peers/torch_reference.py}
STEPS=${STEPS:-30}
WARMUP=${WARMUP:-5}
BF16_STEPS=${BF16_STEPS:-8}
SIZES=${SIZES:-64 128}
THREADS=${THREADS:-$(nproc)}
OLD_BIN=${OLD_BIN:-build/histotrain}
NEW_BIN=${NEW_BIN:-build-torch2-cuda/histotrain}
OLD_PY=${OLD_PY:-/usr/bin/python3}
NEW_PY=${NEW_PY:-$(bench/torch2_env.sh)}
for bin in "$OLD_BIN" "$NEW_BIN"; do
  [ -x "$bin" ] || { echo "torch2_compare: $bin is missing (./run.sh build; bench/torch2_build.sh)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

json_field() {  # FILE EXPRESSION: a Python expression over the JSON object `s`
  /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$1"
}

# histotrain: BIN LABEL SIZE PRECISION-FLAGS...; prints one table row.
ours() {
  local bin=$1 label=$2 size=$3; shift 3
  local run="$WORK/run-$label-$size-$*" steps=$STEPS
  run=${run// /_}
  [[ " $* " != *" bf16 "* ]] || steps=$BF16_STEPS
  "$bin" train --data "$DATA" --image-size "$size" --batch-size 32 --epochs 1 --max-steps "$steps" \
    --threads "$THREADS" --val-fraction 0 --cache-dir "$WORK/cache-$size" --quiet --out "$run" "$@" \
    >/dev/null 2>"$run.log" || { echo "| $label | $size | $* | failed: $(tail -1 "$run.log") |"; return; }
  local rate choice
  rate=$(json_field "$run/summary.json" "round(s['steps']*32/s['train_s'],1)")
  choice=$(json_field "$run/summary.json" "(s.get('precision_choice') or {}).get('chosen','')")
  echo "| $label | $size | $* ${choice:+(chose $choice)} ($steps steps) | $rate | | |"
}

# The peer: PYTHON LABEL SIZE PEER-FLAGS...; prints one table row.
peer() {
  local python=$1 label=$2 size=$3; shift 3
  local log="$WORK/peer-$label-$size.log"
  "$python" "$PEER" --data "$DATA" --image-size "$size" --batch-size 32 --threads "$THREADS" --workers 1 \
    --max-steps "$STEPS" --warmup-steps "$WARMUP" "$@" >"$log" 2>&1 ||
    { echo "| $label | $size | $* | failed: $(tail -1 "$log") |"; return; }
  sed -n 's/^RESULT //p' "$log" | tail -1 > "$log.json"
  json_field "$log.json" "'| $label | $size | $* | %s | %s | %s |' % (s['imgs_per_s'], s.get('imgs_per_s_after_warmup', ''),
    round(s['train_s'] - s['steps'] * 32 / s['imgs_per_s_after_warmup'], 1) if s.get('compile') else '')"
}

echo "# $(date -u +%F), ResNet-18, batch 32, $STEPS steps, $THREADS threads, $DATA"
echo
echo "histotrain 1.13: $("$OLD_BIN" --version 2>&1 | head -1)"
echo "histotrain 2.11: $("$NEW_BIN" --version 2>&1 | head -1)"
for bin in "$OLD_BIN" "$NEW_BIN"; do "$bin" info 2>&1 | sed 's/^/    /'; echo; done
echo
echo "| program | px | precision / mode | images/s | after $WARMUP steps | compile s |"
echo "| --- | --- | --- | --- | --- | --- |"
for size in $SIZES; do
  ours "$OLD_BIN" "histotrain, LibTorch 1.13" "$size" --amp none
  ours "$NEW_BIN" "histotrain, LibTorch 2.11" "$size" --amp none
  ours "$OLD_BIN" "histotrain, LibTorch 1.13" "$size" --amp bf16 --channels-last
  ours "$NEW_BIN" "histotrain, LibTorch 2.11" "$size" --amp bf16 --channels-last
  ours "$OLD_BIN" "histotrain, LibTorch 1.13" "$size" --amp auto
  ours "$NEW_BIN" "histotrain, LibTorch 2.11" "$size" --amp auto
  peer "$OLD_PY" "PyTorch 1.13 eager" "$size"
  peer "$NEW_PY" "PyTorch 2.11 eager" "$size"
  peer "$NEW_PY" "PyTorch 2.11 compiled" "$size" --compile
done
