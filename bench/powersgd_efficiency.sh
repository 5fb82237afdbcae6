#!/usr/bin/env bash
# PowerSGD's efficiency in its steady state: 2 "hosts" on shaped links (bench/cluster.sh), one rank
# and one thread each, against the serial run of the same global batch. Serial and 2-host runs
# alternate, starting and ending with a serial one: each 2-host run is compared with the mean of
# the serial runs just before and just after it, so that a machine whose speed drifts is compared
# with itself; the spread of the repeats is the noise.
#
#   bench/powersgd_efficiency.sh DATA [RATE]      (default RATE: 1gbit)
#   environment: SIZE (128), BATCH per rank (16), STEPS (60), RANK (4), REPEATS (3),
#                START: uncompressed steps first (0; 10 with PEER, the peer's own setting)
#                PEER: the Python peer (torch_reference.py) to measure the same way, interleaved
#                      with histotrain: its PowerSGD hook (rank 4, error feedback, warm start)
#                CPUS_PER_HOST: each host's rank on its own cores (cluster.sh --cpus-per-host), and
#                      the serial runs on host 0's (0: the kernel places every process)
#
# Prints one row per program and repeat: serial images/s (before, after) and 2-host images/s,
# efficiency (2-host / (2 x mean serial)), and for histotrain rank 0's PowerSGD arithmetic and
# time after backward per step (summary.json's reducer_profile); then each program's median and
# range. The peer's PowerSGD sometimes aborts inside PyTorch 1.13's Gloo: such a run is started
# again, up to 3 times, and its row says how many starts it took.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: bench/powersgd_efficiency.sh DATA [RATE]}
RATE=${2:-1gbit}
SIZE=${SIZE:-128}
BATCH=${BATCH:-16}
STEPS=${STEPS:-60}
RANK=${RANK:-4}
REPEATS=${REPEATS:-3}
PEER=${PEER:-}
CPUS_PER_HOST=${CPUS_PER_HOST:-0}
ON_HOST_0=()  # what starts a serial run on host 0's cores
[ "$CPUS_PER_HOST" = 0 ] || ON_HOST_0=(taskset -c "0-$((CPUS_PER_HOST - 1))")
if [ -n "$PEER" ]; then START=${START:-10}; else START=${START:-0}; fi
if [ -n "$PEER" ] && [ "$RANK" != 4 ]; then echo "powersgd_efficiency.sh: the peer's PowerSGD is rank 4" >&2; exit 2; fi
PY=/usr/bin/python3
source bench/cluster_runs.sh
WORK=$(mktemp -d /tmp/histotrain-powersgd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; ResNet-18 $SIZE px, batch $BATCH per rank, $STEPS steps, PowerSGD rank $RANK after $START uncompressed steps, $RATE, $CPUS_PER_HOST cores per host (0: not pinned); $(date -u +%F)"

train_flags() {  # $1: per-rank batch, $2: steps
  echo "--data $DATA --image-size $SIZE --batch-size $1 --epochs 1 --max-steps ${2:-$STEPS} --val-fraction 0 \
--threads 1 --conv-grad native --quiet --cache-dir $WORK/cache"
}
peer_flags() {  # $1: per-rank batch. The peer decodes its JPEGs inside the timed loop (--workers 0).
  echo "$PEER --data $DATA --image-size $SIZE --batch-size $1 --max-steps $STEPS --threads 1 --workers 0"
}

# One program's runs; $1: histotrain or peer, $2: the run's name. Each leaves $WORK/$1-$2.rate.
serial() {
  if [ "$1" = histotrain ]; then
    "${ON_HOST_0[@]+"${ON_HOST_0[@]}"}" build/histotrain train $(train_flags $((2 * BATCH))) --out "$WORK/histotrain-$2" \
      >/dev/null 2>&1
    histotrain_rate "$WORK/histotrain-$2" >"$WORK/histotrain-$2.rate"
  else
    OMP_NUM_THREADS=1 "${ON_HOST_0[@]+"${ON_HOST_0[@]}"}" $PY $(peer_flags $((2 * BATCH))) >"$WORK/peer-$2.log" 2>&1
    peer_rate "$WORK/peer-$2.log" >"$WORK/peer-$2.rate"
  fi
}
two_hosts() {
  if [ "$1" = histotrain ]; then
    bench/cluster.sh --hosts 2 --rate "$RATE" --cpus-per-host "$CPUS_PER_HOST" --log "$WORK/histotrain-$2.logs" -- build/histotrain train \
      $(train_flags "$BATCH") --grad-compression "powersgd:$RANK" --powersgd-start-step "$START" \
      --out "$WORK/histotrain-$2" >/dev/null 2>&1 || return 1
    histotrain_rate "$WORK/histotrain-$2" >"$WORK/histotrain-$2.rate"
  else
    local start
    for start in 1 2 3; do
      echo "$start" >"$WORK/peer-$2.starts"
      if OMP_NUM_THREADS=1 bench/cluster.sh --hosts 2 --rate "$RATE" --cpus-per-host "$CPUS_PER_HOST" --log "$WORK/peer-$2.logs" -- \
        $PY $(peer_flags "$BATCH") --comm-hook powersgd >"$WORK/peer-$2.log" 2>&1; then
        peer_rate "$WORK/peer-$2.log" >"$WORK/peer-$2.rate"
        return 0
      fi
    done
    return 1
  fi
}

row() {  # $1: program, $2: repeat (its 2-host run is two-$2, the serial runs serial-$(($2 - 1)) and serial-$2)
  local program=$1 repeat=$2
  $PY - "$program" "$repeat" "$WORK" <<'PYEOF'
import json, os, sys
program, repeat, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rate(name):
    return float(open(f"{work}/{program}-{name}.rate").read())
before, after = rate(f"serial-{repeat - 1}"), rate(f"serial-{repeat}")
failed = f"{work}/{program}-two-{repeat}.failed"
if os.path.exists(failed):  # the efficiency cell stays "-", which the summary skips
    print(f"| {program} | {repeat} | {before:.2f}, {after:.2f} | failed: {open(failed).read().strip()} | - | - | - |")
    sys.exit(0)
two = rate(f"two-{repeat}")
eff = two / (before + after)
if program == "histotrain":
    p = json.load(open(f"{work}/histotrain-two-{repeat}/summary.json"))["reducer_profile"]
    extra = f"{p['compression_ms']:.1f} | {p['exposed_ms']:.1f} |"
else:
    starts = int(open(f"{work}/peer-two-{repeat}.starts").read())
    extra = "- | - |" + (f" started {starts} times (Gloo aborts)" if starts > 1 else "")
print(f"| {program} | {repeat} | {before:.2f}, {after:.2f} | {two:.2f} | {eff:.3f} | {extra}")
PYEOF
}
summary() {  # the table's rows on stdin
  $PY -c '
import statistics, sys
by = {}
for l in sys.stdin:
    cells = [c.strip() for c in l.split("|")]
    if len(cells) > 5 and cells[2].isdigit() and cells[5]:
        try: e = float(cells[5])
        except ValueError: continue  # a failed run
        by.setdefault(cells[1], []).append(e)
for program, e in by.items():
    e.sort()
    print(f"{program}: efficiency over {len(e)} repeats: median {statistics.median(e):.3f}, range {e[0]:.3f}-{e[-1]:.3f}")'
}

PROGRAMS=(histotrain)
[ -z "$PEER" ] || PROGRAMS+=(peer)
# The tile cache, once, outside every figure.
build/histotrain train $(train_flags 2 1) --out "$WORK/warm" >/dev/null 2>&1
{
  echo "| program | repeat | serial images/s, before and after | 2 hosts images/s | efficiency | PowerSGD arithmetic ms/step | after backward ms/step |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  for program in "${PROGRAMS[@]}"; do serial "$program" serial-0; done
  for repeat in $(seq 1 "$REPEATS"); do
    for program in "${PROGRAMS[@]}"; do
      two_hosts "$program" "two-$repeat" || failure "$WORK/$program-two-$repeat.logs" >"$WORK/$program-two-$repeat.failed"
      serial "$program" "serial-$repeat"
      row "$program" "$repeat"
    done
  done
} | tee "$WORK/table"
echo
summary <"$WORK/table"
