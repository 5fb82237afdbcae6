#!/usr/bin/env bash
# Data-parallel training on this machine's cores: the same global batch and steps on 1 rank with
# all threads, and on R ranks sharing the cores (`histotrain launch`); gradient buckets that
# overlap backward versus one bucket that cannot; the Python peer (DDP, --nproc) side by side.
#
#   bench/ddp.sh [DATA]          RANKS="1 2" SIZE=64 GLOBAL_BATCH=32 STEPS=40 bench/ddp.sh
#
# Images/s count training steps only (summary.json train_s; the peer's own timer, which
# includes its data loading). gradient wait: rank 0's time after backward waiting for
# all-reduces still in flight.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev-96}
PEER=${PEER:-../shared/peers/torch_reference.py}
PYTHON=${PYTHON:-/usr/bin/python3}
CORES=$(nproc)
RANKS=${RANKS:-"1 $CORES"}
SIZE=${SIZE:-64}
GLOBAL_BATCH=${GLOBAL_BATCH:-32}
STEPS=${STEPS:-40}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "# $(date -u +%F), $CORES cores: $(lscpu | sed -n 's/^Model name: *//p'), $(build/histotrain --version)"
echo "## ResNet-18, $SIZE px, global batch $GLOBAL_BATCH, $STEPS steps, $DATA (grouped split), gloo"
run_histotrain() {  # ranks bucket_mb label
  local ranks=$1 bucket=$2 label=$3 out="$WORK/run-$1-$2"
  local batch=$((GLOBAL_BATCH / ranks)) threads=$((CORES / ranks))
  [ "$threads" -ge 1 ] || threads=1
  build/histotrain launch -n "$ranks" --threads-per-rank "$threads" -- train --data "$DATA" --groups "$DATA/groups.csv" \
    --image-size "$SIZE" --batch-size "$batch" --epochs 1 --max-steps "$STEPS" --val-fraction 0.2 \
    --bucket-mb "$bucket" --cache-dir "$WORK/cache" --quiet --out "$out" >/dev/null 2>&1
  "$PYTHON" -c "
import json; s=json.load(open('$out/summary.json'))
print(f\"histotrain {s['world_size']} rank(s) x {s['threads']} thread(s), batch {s['batch_per_rank']}/rank, $label: \"
      f\"{s['steps']*s['global_batch']/s['train_s']:7.1f} img/s, gradient wait {1000*s['gradient_wait_s']/s['steps']:5.1f} ms/step\")"
}
for ranks in $RANKS; do
  run_histotrain "$ranks" 25 "25 MiB buckets"
  [ "$ranks" -gt 1 ] && run_histotrain "$ranks" 1024 "one bucket (no overlap)"
done

echo "## Python PyTorch peer (torch_reference.py, DDP over gloo, 1 loader worker per rank)"
for ranks in $RANKS; do
  threads=$((CORES / ranks)); [ "$threads" -ge 1 ] || threads=1
  r=$("$PYTHON" "$PEER" --data "$DATA" --image-size "$SIZE" --batch-size $((GLOBAL_BATCH / ranks)) --nproc "$ranks" \
        --threads "$threads" --workers 1 --max-steps "$STEPS" 2>/dev/null | sed -n 's/^RESULT //p')
  echo "peer $ranks rank(s) x $threads thread(s): $(echo "$r" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["imgs_per_s"])') img/s"
done
