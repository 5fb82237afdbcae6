#!/usr/bin/env bash
# PowerSGD's efficiency in its steady state: 2 "hosts" on shaped links (bench/cluster.sh), one rank
# and one thread each, every step compressed (--powersgd-start-step 0), against the serial run of
# the same global batch. Serial and 2-host runs alternate, starting and ending with a serial one:
# each 2-host run is compared with the mean of the serial runs just before and just after it, so
# that a machine whose speed drifts is compared with itself; the spread of the repeats is the noise.
#
#   bench/powersgd_efficiency.sh DATA [RATE]      (default RATE: 1gbit)
#   environment: SIZE (128), BATCH per rank (16), STEPS (60), RANK (4), REPEATS (3)
#
# Prints one row per repeat: serial images/s (before, after) and 2-host images/s, efficiency
# (2-host / (2 x mean serial)), and rank 0's PowerSGD arithmetic and time after backward per step
# (summary.json's reducer_profile); then the median and range of the efficiencies.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/powersgd_efficiency.sh DATA [RATE]}
RATE=${2:-1gbit}
SIZE=${SIZE:-128}
BATCH=${BATCH:-16}
STEPS=${STEPS:-60}
RANK=${RANK:-4}
REPEATS=${REPEATS:-3}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/histotrain-powersgd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; ResNet-18 $SIZE px, batch $BATCH per rank, $STEPS steps, PowerSGD rank $RANK from step 0, $RATE; $(date -u +%F)"

train_flags() {  # $1: per-rank batch, $2: steps
  echo "--data $DATA --image-size $SIZE --batch-size $1 --epochs 1 --max-steps ${2:-$STEPS} --val-fraction 0 \
--threads 1 --conv-grad native --quiet --cache-dir $WORK/cache"
}
# A run folder's images/s, and the 2-host run's row.
rate() { $PY -c "import json,sys; s=json.load(open(sys.argv[1])); print(round(s['steps']*s['global_batch']/s['train_s'],2))" "$1/summary.json"; }
row() {  # $1: repeat, $2 and $3: serial images/s before and after, $4: the 2-host run folder
  $PY - "$@" <<'PYEOF'
import json, sys
repeat, before, after, run = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = json.load(open(run + "/summary.json"))
two = s["steps"] * s["global_batch"] / s["train_s"]
p = s["reducer_profile"]
eff = two / (before + after)
print(f"| {repeat} | {before:.2f}, {after:.2f} | {two:.2f} | {eff:.3f} | {p['compression_ms']:.1f} | {p['exposed_ms']:.1f} |")
PYEOF
}
summary() {  # the table's rows on stdin
  $PY -c '
import statistics, sys
e = sorted(float(l.split("|")[4]) for l in sys.stdin if l.startswith("| ") and l.split("|")[1].strip().isdigit())
print(f"\nefficiency over {len(e)} repeats: median {statistics.median(e):.3f}, range {e[0]:.3f}-{e[-1]:.3f}")'
}
# The tile cache, once, outside every figure.
build/histotrain train $(train_flags 2 1) --out "$WORK/warm" >/dev/null 2>&1
serial() { build/histotrain train $(train_flags $((2 * BATCH))) --out "$WORK/serial-$1" >/dev/null 2>&1; }
{
  echo "| repeat | serial images/s, before and after | 2 hosts images/s | efficiency | PowerSGD arithmetic ms/step | after backward ms/step |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  serial 0
  for repeat in $(seq 1 "$REPEATS"); do
    bench/cluster.sh --hosts 2 --rate "$RATE" --log "$WORK/logs-$repeat" -- build/histotrain train $(train_flags "$BATCH") \
      --grad-compression "powersgd:$RANK" --powersgd-start-step 0 --out "$WORK/two-$repeat" >/dev/null 2>&1
    serial "$repeat"
    row "$repeat" "$(rate "$WORK/serial-$((repeat - 1))")" "$(rate "$WORK/serial-$repeat")" "$WORK/two-$repeat"
  done
} | tee "$WORK/table"
summary <"$WORK/table"
