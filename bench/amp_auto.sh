#!/usr/bin/env bash
# --amp auto against each fixed choice, on this machine: training images/s of fp32, fp32 +
# channels-last, bf16 + channels-last and auto (its first run measures, the second reads the
# cache), and what deciding cost at start-up. Runs alternate, ROUNDS times, so drift hits all alike.
#
#   bench/amp_auto.sh [DATA]        SIZES="64 128" STEPS=20 ROUNDS=2 THREADS=2 BATCH=32
#   FIXED="fp32 fp32+channels-last bf16+channels-last"   the fixed choices to run beside auto (drop
#   one that is hopeless here: bf16 on a CPU without bf16 instructions takes minutes a run)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev}
SIZES=${SIZES:-64 128}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-32}
FIXED=${FIXED:-fp32 fp32+channels-last bf16+channels-last}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export HISTOTRAIN_CACHE=$WORK/cache   # a fresh decision cache (and tile cache) for this benchmark

echo "# $(date -u +%F), $(build/histotrain --version)"
echo "## ResNet-18, batch $BATCH, $THREADS threads, $STEPS steps a run (training images/s over the steps), $ROUNDS rounds"
run() {  # NAME SIZE FLAGS...
  local name=$1 size=$2; shift 2
  local out="$WORK/run-$name-$size-$RANDOM"
  build/histotrain train --data "$DATA" --image-size "$size" --batch-size "$BATCH" --epochs 1 --max-steps "$STEPS" \
    --val-fraction 0 --threads "$THREADS" --quiet --out "$out" "$@" >/dev/null 2>"$out.log" || { tail -5 "$out.log"; exit 1; }
  /usr/bin/python3 - "$out/summary.json" "$name" "$size" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); c = s["precision_choice"]
extra = ""
if c:
    figures = ", ".join(f"{k} {v:.1f}" for k, v in c["images_per_s"].items())
    extra = f"  -> {c['chosen']} ({'cache' if c['from_cache'] else 'measured'} in {c['seconds']:.1f} s: {figures})"
print(f"{sys.argv[3]:>4} px  {sys.argv[2]:<20} {s['steps'] * s['batch_per_rank'] / s['train_s']:7.1f} img/s{extra}")
PY
}
for size in $SIZES; do
  rm -f "$HISTOTRAIN_CACHE/precision.json"
  for round in $(seq "$ROUNDS"); do
    for fixed in $FIXED; do
      case $fixed in
        fp32) run fp32 "$size" --amp none ;;
        fp32+channels-last) run fp32+channels-last "$size" --amp none --channels-last ;;
        bf16+channels-last) run bf16+channels-last "$size" --amp bf16 --channels-last ;;
        *) echo "unknown choice in FIXED: $fixed" >&2; exit 2 ;;
      esac
    done
    run "auto (round $round)" "$size" --amp auto
  done
done
