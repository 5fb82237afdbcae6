#!/usr/bin/env bash
# Pipeline model parallelism on this machine's cores: ResNet-18 cut into K stages on K ranks
# (`histotrain launch`), one thread each, for M = 1, 2, 4, 8 micro-batches per batch, next to
# the unsplit model on one process. Same model, image size, batch and steps everywhere.
#
#   bench/pipeline.sh [DATA]       K=2 SIZE=128 BATCH=32 STEPS=16 MICRO="1 2 4 8" VIRTUAL="1 2" bench/pipeline.sh
#
# VIRTUAL: chunks per stage (--virtual-stages; 2: the interleaved schedule, each rank runs two
# chunks and a micro-batch loops through the ranks twice).
#
# images/s: training steps only (summary.json train_s). waiting: each stage's share of its step
# time blocked in receives (the bubble plus transfers), against the fill-drain schedule's
# (K-1)/(M+K-1). peak RSS: each rank's high-water mark (every rank maps the tile cache and holds
# the whole model; activations are what differ).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev-96}
PYTHON=${PYTHON:-/usr/bin/python3}
K=${K:-2}
SIZE=${SIZE:-128}
BATCH=${BATCH:-32}
STEPS=${STEPS:-16}
MICRO=${MICRO:-"1 2 4 8"}
VIRTUAL=${VIRTUAL:-"1 2"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
common=(--data "$DATA" --image-size "$SIZE" --batch-size "$BATCH" --epochs 1 --val-fraction 0
        --cache-dir "$WORK/cache" --quiet)

echo "# $(date -u +%F), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'), $(build/histotrain --version)"
echo "## ResNet-18, $SIZE px, fp32, batch $BATCH, $STEPS steps; $DATA"
build/histotrain train "${common[@]}" --max-steps 1 --out "$WORK/warm" >/dev/null 2>&1  # builds the tile cache
for threads in 1 "$K"; do
  build/histotrain train "${common[@]}" --max-steps "$STEPS" --threads "$threads" --out "$WORK/unsplit-$threads" >/dev/null 2>&1
  "$PYTHON" -c "
import json; s=json.load(open('$WORK/unsplit-$threads/summary.json'))
print(f\"unsplit, 1 process x {s['threads']} thread(s):        {s['steps']*s['global_batch']/s['train_s']:6.1f} img/s, peak RSS {s['peak_rss_mib']:.0f} MiB\")"
done
for v in $VIRTUAL; do
  for m in $MICRO; do
    out="$WORK/pipe-$v-$m"
    build/histotrain launch -n "$K" --threads-per-rank 1 -- train "${common[@]}" --max-steps "$STEPS" --pipeline-stages "$K" \
      --micro-batches "$m" --virtual-stages "$v" --out "$out" >/dev/null 2>"$out.log" || { cat "$out.log" >&2; exit 1; }
    "$PYTHON" -c "
import json; s=json.load(open('$out/summary.json')); p=s['pipeline']
stages=', '.join(f\"stage {x['stage']} ({' + '.join(x['chunks'])}) waits {x['waiting_fraction']:.0%}, peak RSS {x['peak_rss_mib']:.0f} MiB\" for x in p['per_stage'])
print(f\"pipeline K={p['stages']} V={p['virtual_stages']} M={p['micro_batches']}: {s['steps']*s['global_batch']/s['train_s']:6.1f} img/s; bubble (K-1)/(VM+K-1) = {p['bubble_theoretical']:.0%}; {stages}\")"
  done
done
