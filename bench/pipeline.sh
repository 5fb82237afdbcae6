#!/usr/bin/env bash
# Pipeline model parallelism on this machine's cores: a ResNet (ARCH, ResNet-18 unless set) cut
# into K stages on K ranks (`histotrain launch`), one thread each, for M = 1, 2, 4, 8
# micro-batches per batch, next to the unsplit model on one process. Same model, image size,
# batch and steps everywhere.
#
#   bench/pipeline.sh [DATA]       ARCH=resnet18 K=2 SIZE=128 BATCH=32 STEPS=16 MICRO="1 2 4 8" \
#                                  VIRTUAL="1 2" SCHEDULES="gpipe 1f1b" REPEAT=1 bench/pipeline.sh
#
# VIRTUAL: chunks per stage (--virtual-stages; 2: the interleaved schedule, each rank runs two
# chunks and a micro-batch loops through the ranks twice). SCHEDULES: --pipeline-schedule
# (gpipe: fill-drain; 1f1b: one forward, one backward, fewer activations held).
#
# images/s: training steps only (summary.json train_s); in brackets, what the stage plan's
# schedule promises from the unit costs and transfer times measured at the start.
# waiting: each stage's share of its step time blocked in receives (the bubble plus transfers),
# against the schedule's (K-1)/(VM+K-1); in brackets, the share of the step that its messages
# spend in transfer, from the ping-pong measured at the start. computes: the stage's forwards and
# backwards per step (its step less its waiting), against the estimate's from the unit costs
# measured at the start (best of 3, one unit at a time). holds: the most memory a step held beyond what was held
# before it (activations kept for backward, gradients, tensors in flight), by the allocator's count.
# peak RSS: each rank's high-water mark (every rank maps the tile cache and holds the whole
# model; the allocator keeps freed pages for the next step).
#
# REPEAT=N runs every pipeline configuration N times, the configurations taking turns, and ends
# with each one's median images/s and its median ratio to gpipe V=1 M=1 of the same round: on a shared
# machine whose speed drifts, a ratio within one round is steadier than one run each.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev-96}
PYTHON=${PYTHON:-/usr/bin/python3}
K=${K:-2}
ARCH=${ARCH:-resnet18}
SIZE=${SIZE:-128}
BATCH=${BATCH:-32}
STEPS=${STEPS:-16}
MICRO=${MICRO:-"1 2 4 8"}
VIRTUAL=${VIRTUAL:-"1 2"}
SCHEDULES=${SCHEDULES:-"gpipe 1f1b"}
REPEAT=${REPEAT:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
common=(--data "$DATA" --arch "$ARCH" --image-size "$SIZE" --batch-size "$BATCH" --epochs 1 --val-fraction 0
        --cache-dir "$WORK/cache" --quiet)

echo "# $(date -u +%F), $(build/histotrain --version)"
echo "## $ARCH, $SIZE px, fp32, batch $BATCH, $STEPS steps; $DATA"
build/histotrain train "${common[@]}" --max-steps 1 --out "$WORK/warm" >/dev/null 2>&1  # builds the tile cache
for threads in 1 "$K"; do
  build/histotrain train "${common[@]}" --max-steps "$STEPS" --threads "$threads" --out "$WORK/unsplit-$threads" >/dev/null 2>&1
  "$PYTHON" -c "
import json; s=json.load(open('$WORK/unsplit-$threads/summary.json'))
print(f\"unsplit, 1 process x {s['threads']} thread(s):        {s['steps']*s['global_batch']/s['train_s']:6.1f} img/s, holds {s['step_held_peak_mib']:.0f} MiB, peak RSS {s['peak_rss_mib']:.0f} MiB\")"
done
run_pipeline() {  # ROUND SCHEDULE V M: one pipeline run; prints its line and records its images/s
  local out="$WORK/pipe-$1-$2-$3-$4"
  build/histotrain launch -n "$K" --threads-per-rank 1 -- train "${common[@]}" --max-steps "$STEPS" --pipeline-stages "$K" \
    --pipeline-schedule "$2" --virtual-stages "$3" --micro-batches "$4" --out "$out" >/dev/null 2>"$out.log" ||
    { cat "$out.log" >&2; exit 1; }
  "$PYTHON" -c "
import json; s=json.load(open('$out/summary.json')); p=s['pipeline']
rate=s['steps']*s['global_batch']/s['train_s']
step=s['train_s']/s['steps']
recv=lambda x: f\" (transfers {x['estimated_receiving_s']/step:.1%})\" if x.get('estimated_receiving_s') is not None else ''
slow=lambda x: f\", computes {x['computing_s']/x['estimated_computing_s']:.2f}x its estimate\" if x.get('estimated_computing_s') else ''
stages=', '.join(f\"stage {x['stage']} ({' + '.join(x['chunks'])}) waits {x['waiting_fraction']:.0%}{recv(x)}{slow(x)}, holds {x['step_held_peak_mib']:.0f} MiB, peak RSS {x['peak_rss_mib']:.0f} MiB\" for x in p['per_stage'])
est=f\" (estimated {s['global_batch']/p['estimated_step_s']:.1f})\" if p.get('estimated_step_s') else ''
print(f\"pipeline {p['schedule']:5} K={p['stages']} V={p['virtual_stages']} M={p['micro_batches']}: {rate:6.1f} img/s{est}; bubble (K-1)/(VM+K-1) = {p['bubble_theoretical']:.0%}; {stages}\")
open('$WORK/rates', 'a').write(f'$1 $2 $3 $4 {rate}\\n')"
}
for round in $(seq "$REPEAT"); do
  [ "$REPEAT" -gt 1 ] && echo "## round $round of $REPEAT"
  for v in $VIRTUAL; do
    for schedule in $SCHEDULES; do
      for m in $MICRO; do run_pipeline "$round" "$schedule" "$v" "$m"; done
    done
  done
done
[ "$REPEAT" -gt 1 ] && "$PYTHON" -c "
import statistics
runs=[l.split() for l in open('$WORK/rates')]
rate={(r,s,v,m): float(x) for r,s,v,m,x in runs}
base=lambda r: rate.get((r,'gpipe','1','1'))
print('## medians over $REPEAT rounds (ratio: to gpipe V=1 M=1 of the same round)')
for s,v,m in dict.fromkeys((s,v,m) for _,s,v,m,_ in runs):
  rounds=[r for r,ss,vv,mm,_ in runs if (ss,vv,mm)==(s,v,m)]
  rates=[rate[r,s,v,m] for r in rounds]
  ratios=[rate[r,s,v,m]/base(r) for r in rounds if base(r)]
  line=f'{s:5} V={v} M={m}: median {statistics.median(rates):.1f} img/s (range {min(rates):.1f}-{max(rates):.1f})'
  if ratios: line+=f', ratio median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})'
  print(line)"
exit 0
