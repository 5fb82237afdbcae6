#!/usr/bin/env bash
# Strong scaling of data-parallel training on this machine's cores: the same model, image size,
# global batch and steps as 1 rank x 1 thread (serial), 1 rank x all threads, and R ranks sharing
# the cores (`histotrain launch`); buckets that overlap backward versus one bucket that cannot;
# the Python peer (DDP over gloo, --nproc) with the same splits of the cores.
#
#   bench/ddp.sh [DATA]        SIZE=128 GLOBAL_BATCH=32 STEPS=20 RANKS="2" bench/ddp.sh
#
# images/s: training steps only (summary.json train_s; the peer's own timer, its data loading
# included). speedup S = images/s over serial; efficiency E = S / cores used. Per-step times are
# rank 0's host times (see summary.json step_times_ms_covers).
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:-../shared/data/lc25000-dev-96}
PEER=${PEER:-../shared/peers/torch_reference.py}
PYTHON=${PYTHON:-/usr/bin/python3}
CORES=$(nproc)
RANKS=${RANKS:-$CORES}
SIZE=${SIZE:-128}
GLOBAL_BATCH=${GLOBAL_BATCH:-32}
STEPS=${STEPS:-20}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.txt

histotrain_run() {  # ranks threads bucket_mb label
  local ranks=$1 threads=$2 bucket=$3 label=$4 out="$WORK/run-$1-$2-$3"
  build/histotrain launch -n "$ranks" --threads-per-rank "$threads" -- train --data "$DATA" --groups "$DATA/groups.csv" \
    --image-size "$SIZE" --batch-size $((GLOBAL_BATCH / ranks)) --epochs 1 --max-steps "$STEPS" --val-fraction 0.2 \
    --bucket-mb "$bucket" --cache-dir "$WORK/cache" --quiet --out "$out" >/dev/null 2>"$out.log" ||
    { cat "$out.log" >&2; exit 1; }
  "$PYTHON" -c "
import json; s=json.load(open('$out/summary.json')); t=s['step_times_ms']
print('histotrain', $ranks, $threads, s['steps']*s['global_batch']/s['train_s'], t['backward'], t['allreduce'],
      t['exposed'], t['overlapped'], '$label'.replace(' ', '_'))" >>"$RESULTS"
}
peer_run() {  # ranks threads
  local r
  r=$("$PEER_PYTHON" "$PEER" --data "$DATA" --image-size "$SIZE" --batch-size $(($GLOBAL_BATCH / $1)) --nproc "$1" \
        --threads "$2" --workers 1 --max-steps "$STEPS" 2>/dev/null | sed -n 's/^RESULT //p')
  echo "peer $1 $2 $(echo "$r" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["imgs_per_s"])') - - - - -" >>"$RESULTS"
}

echo "# $(date -u +%F), $(build/histotrain --version)"
echo "## ResNet-18, $SIZE px, fp32, global batch $GLOBAL_BATCH, $STEPS steps after the data is cached, gloo; $DATA"
# Warm the tile cache once so that no configuration pays for decoding.
build/histotrain train --data "$DATA" --image-size "$SIZE" --epochs 1 --max-steps 1 --cache-dir "$WORK/cache" \
  --quiet --out "$WORK/warm" >/dev/null 2>&1
histotrain_run 1 1 25 "serial"
histotrain_run 1 "$CORES" 25 "threads"
for ranks in $RANKS; do
  histotrain_run "$ranks" $((CORES / ranks > 0 ? CORES / ranks : 1)) 25 "25 MiB buckets"
  histotrain_run "$ranks" $((CORES / ranks > 0 ? CORES / ranks : 1)) 1024 "one bucket"
done
peer_run 1 1
peer_run 1 "$CORES"
for ranks in $RANKS; do peer_run "$ranks" $((CORES / ranks > 0 ? CORES / ranks : 1)); done

"$PYTHON" - "$RESULTS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
base = {who: float(r[3]) for r in rows for who in [r[0]] if r[1] == '1' and r[2] == '1'}
print(f"{'who':10s} {'ranks x threads':15s} {'variant':16s} {'img/s':>7s} {'S':>5s} {'E':>5s}   per step ms: {'backward':>8s} {'all-red.':>8s} {'exposed':>8s} {'overlap':>8s}")
for who, ranks, threads, ips, bw, ar, ex, ov, *label in rows:
    cores = int(ranks) * int(threads); s = float(ips) / base[who]
    f = lambda v: f"{float(v):8.1f}" if v != '-' else f"{'':8s}"
    print(f"{who:10s} {ranks + ' x ' + threads:15s} {(label[0].replace('_', ' ') if label else ''):16s} {float(ips):7.1f} {s:5.2f} {s / cores:5.0%}   {'':13s}{f(bw)} {f(ar)} {f(ex)} {f(ov)}")
PY
