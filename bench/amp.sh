#!/usr/bin/env bash
# Mixed precision and memory format on this machine: fp32 vs bf16 (and fp16 on CUDA) x contiguous
# vs channels-last, images/s and peak memory at 64, 128 and 224 px; the Python peer with the same
# switches side by side; and accuracy after the same epochs on real tiles.
#
#   bench/amp.sh [DATA] [ACCURACY_DATA]
#   DEVICE=cuda AMPS="none bf16 fp16" BATCH=256 bench/amp.sh      (on a GPU machine)
#
# PYTHON names the interpreter with torch/torchvision for the peer (default: Debian's python3);
# PEER_WORKERS its DataLoader processes.
#
# Each training-step configuration runs in its own process, so "peak RSS" is its own.
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:-../shared/data/lc25000-dev}
ACC_DATA=${2:-../shared/data/lc25000-dev-96}
PEER=${PEER:-../shared/peers/torch_reference.py}
DEVICE=${DEVICE:-cpu}
AMPS=${AMPS:-none bf16}
SIZES=${SIZES:-64 128 224}
PEER_SIZES=${PEER_SIZES:-$SIZES}
STEPS=${STEPS:-15}
EPOCHS=${EPOCHS:-2}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-32}
PYTHON=${PYTHON:-/usr/bin/python3}
PEER_WORKERS=${PEER_WORKERS:-1}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
py() { "$PYTHON" "$@"; }

echo "# $(date -u +%F), device $DEVICE, $(build/histotrain --version)"
echo "## training step, ResNet-18, batch $BATCH, $THREADS threads, $STEPS timed steps after 3 warm-up steps"
for size in $SIZES; do
  for amp in $AMPS; do
    for format in contiguous channels_last; do
      build/bench/throughput_bench --data "$DATA" --images 0 --sizes "$size" --threads-list "$THREADS" \
        --amp-list "$amp" --formats "$format" --steps "$STEPS" --batch-size "$BATCH" --device "$DEVICE" --cache-dir "$WORK/cache" | grep '^train'
    done
  done
done

echo "## Python PyTorch peer (torch_reference.py, $PEER_WORKERS loader worker(s), data loading inside its timer), $STEPS steps"
for size in $PEER_SIZES; do
  for amp in $AMPS; do
    for cl in "" "--channels-last"; do
      r=$("$PEER_PYTHON" "$PEER" --data "$DATA" --image-size "$size" --batch-size "$BATCH" --threads "$THREADS" --workers "$PEER_WORKERS" \
            --max-steps "$STEPS" --amp "$amp" --device "$DEVICE" $cl 2>/dev/null | sed -n 's/^RESULT //p')
      printf "peer %3s px %-4s %-15s: %s img/s\n" "$size" "$amp" "${cl:-contiguous}" \
        "$(echo "$r" | py -c 'import json,sys; print(json.load(sys.stdin)["imgs_per_s"])')"
    done
  done
done

echo "## accuracy after $EPOCHS epochs on real tiles ($ACC_DATA, 64 px, grouped validation split, seed 0)"
for amp in $AMPS; do
  for cl in "" "--channels-last"; do
    run="$WORK/acc-$amp${cl}"
    build/histotrain train --data "$ACC_DATA" --groups "$ACC_DATA/groups.csv" --image-size 64 --epochs "$EPOCHS" \
      --batch-size 32 --threads "$THREADS" --amp "$amp" --device "$DEVICE" $cl --cache-dir "$WORK/cache" --quiet \
      --out "$run" >/dev/null 2>&1
    py -c "
import json; s=json.load(open('$run/summary.json')); v=s['val']
print(f\"histotrain {'$amp':4s} {'${cl:---contiguous}'[2:]:14s}: val acc {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}, \"
      f\"{s['steps']*32/s['train_s']:.1f} train img/s over {s['epochs']} epochs\")"
  done
done
