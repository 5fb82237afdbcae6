#!/usr/bin/env bash
# The foundation benchmark: decode throughput, and serial training images/s of histotrain next to
# the Python PyTorch peer (../shared/peers/torch_reference.py), same machine, same run.
#
#   bench/foundation.sh [DATA]        (DATA: default ../shared/data/lc25000-dev)
#   STEPS=30 SIZES="64 128" THREADS="1 2" bench/foundation.sh
#
# Both training figures are (optimizer steps x batch) / wall time of the training loop, warm-up
# steps included. Inside the peer's timer: JPEG decoding by its DataLoader worker (overlapped).
# Inside ours: batch assembly from the tile cache and augmentation; the cache build (decode once)
# is printed separately.
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:-../shared/data/lc25000-dev}
PEER=${PEER:-../shared/peers/torch_reference.py}
STEPS=${STEPS:-30}
SIZES=${SIZES:-64 128}
THREADS=${THREADS:-1 $(nproc)}
BIN=build/histotrain
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "# $(date -u +%F), $($BIN --version); peer: $PEER_PYTHON (PyTorch $PEER_TORCH)"
echo "## decode + resize, and the training step split in two (C++ only)"
build/bench/throughput_bench --data "$DATA" --images 2000 --steps 20 --cache-dir "$WORK/cache" \
  --sizes "$(echo $SIZES | tr ' ' ',')" --threads-list "$(echo $THREADS | tr ' ' ',')"

echo "## serial training, ResNet-18, batch 32, $STEPS steps: histotrain vs Python PyTorch"
printf "%-6s %-8s %16s %16s %8s %14s\n" size threads histotrain_img/s python_img/s ratio cache_build_s
for size in $SIZES; do
  for threads in $THREADS; do
    run="$WORK/run-$size-$threads"
    start=$(date +%s.%N)
    $BIN train --data "$DATA" --image-size "$size" --batch-size 32 --epochs 1 --max-steps "$STEPS" \
      --threads "$threads" --val-fraction 0 --cache-dir "$WORK/cache-$size-$threads" --quiet --out "$run" \
      >/dev/null 2>"$run.log"
    ours=$(/usr/bin/python3 -c "import json,sys; s=json.load(open('$run/summary.json')); print(round(s['steps']*32/s['train_s'],1))")
    cache=$(sed -n 's/^data ready in //p' "$run.log")
    peer=$("$PEER_PYTHON" "$PEER" --data "$DATA" --image-size "$size" --batch-size 32 --threads "$threads" \
             --workers 1 --max-steps "$STEPS" 2>/dev/null | sed -n 's/^RESULT //p' |
           /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['imgs_per_s'])")
    ratio=$(/usr/bin/python3 -c "print(round($ours/$peer, 2))")
    printf "%-6s %-8s %16s %16s %8s %14s\n" "$size" "$threads" "$ours" "$peer" "${ratio}x" "$cache"
  done
done
