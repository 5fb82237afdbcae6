#!/usr/bin/env bash
# Data parallelism between two "hosts" on shaped links (bench/cluster.sh): histotrain's gradient
# compression (none, fp16, PowerSGD rank 4) and the Python peer's DDP communication hooks (the
# same three, PyTorch's own), in one run, each against its own serial run of the same global
# batch. ResNet-18, one thread per rank.
#
#   bench/cluster_compare.sh DATA [RATE...]       (default rates: 1gbit 10gbit)
#   environment: SIZE (128), BATCH per rank (16), STEPS (40), KINDS ("none fp16 powersgd"),
#                PEER (../shared/peers/torch_reference.py)
#
# Prints one row per configuration: images/s of the training steps and the efficiency
# (images/s of 2 ranks / (2 x the serial images/s)). PowerSGD starts after 10 uncompressed steps in
# both (the peer's setting), and those steps are inside the figure.
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:?usage: bench/cluster_compare.sh DATA [RATE...]}
shift
if [ $# -gt 0 ]; then RATES=("$@"); else RATES=(1gbit 10gbit); fi
SIZE=${SIZE:-128}
BATCH=${BATCH:-16}
STEPS=${STEPS:-40}
read -r -a KIND_LIST <<<"${KINDS:-none fp16 powersgd}"
PEER=${PEER:-../shared/peers/torch_reference.py}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/histotrain-cluster-compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CACHE=$WORK/cache
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; ResNet-18 $SIZE px, batch $BATCH per rank, $STEPS steps; $(date -u +%F)"

source bench/cluster_runs.sh
efficiency() { $PY -c "import sys; print(f'{float(sys.argv[1]) / (2 * float(sys.argv[2])):.2f}')" "$1" "$2"; }

train_flags() {  # $1: per-rank batch, $2: steps
  echo "--data $DATA --image-size $SIZE --batch-size $1 --epochs 1 --max-steps ${2:-$STEPS} --val-fraction 0 \
--threads 1 --conv-grad native --quiet --cache-dir $CACHE"
}
# The tile cache, once, outside every figure.
build/histotrain train $(train_flags 2 1) --out "$WORK/warm" >/dev/null 2>&1

build/histotrain train $(train_flags $((2 * BATCH))) --out "$WORK/serial" >/dev/null 2>&1
SERIAL=$(histotrain_rate "$WORK/serial")
OMP_NUM_THREADS=1 "$PEER_PYTHON" "$PEER" --data "$DATA" --image-size "$SIZE" --batch-size $((2 * BATCH)) --max-steps "$STEPS" \
  --threads 1 --workers 0 >"$WORK/peer-serial.log" 2>&1
PEER_SERIAL=$(peer_rate "$WORK/peer-serial.log")
echo "| program | link | gradients | images/s | efficiency |"
echo "| --- | --- | --- | ---: | ---: |"
echo "| histotrain | serial (1 rank, batch $((2 * BATCH))) | - | $SERIAL | 1 |"
echo "| Python peer | serial (1 rank, batch $((2 * BATCH))) | - | $PEER_SERIAL | 1 |"
for rate in "${RATES[@]}"; do
  for c in "${KIND_LIST[@]}"; do
    flag=$c; [ "$c" != powersgd ] || flag=powersgd:4
    out=$WORK/ht-$rate-$c
    if bench/cluster.sh --hosts 2 --rate "$rate" --log "$out.logs" -- build/histotrain train $(train_flags "$BATCH") \
      --grad-compression "$flag" --powersgd-start-step 10 --out "$out" >/dev/null 2>&1; then
      rate_ht=$(histotrain_rate "$out")
      echo "| histotrain | $rate | $c | $rate_ht | $(efficiency "$rate_ht" "$SERIAL") |"
    else
      echo "| histotrain | $rate | $c | failed: $(failure "$out.logs") | - |"
    fi
    if bench/cluster.sh --hosts 2 --rate "$rate" --log "$WORK/peer-$rate-$c.logs" -- "$PEER_PYTHON" "$PEER" --data "$DATA" \
      --image-size "$SIZE" --batch-size "$BATCH" --max-steps "$STEPS" --threads 1 --workers 0 --comm-hook "$c" \
      >"$WORK/peer-$rate-$c.log" 2>&1; then
      rate_peer=$(peer_rate "$WORK/peer-$rate-$c.log")
      echo "| Python peer | $rate | $c | $rate_peer | $(efficiency "$rate_peer" "$PEER_SERIAL") |"
    else
      echo "| Python peer | $rate | $c | failed: $(failure "$WORK/peer-$rate-$c.logs") | - |"
    fi
  done
done
