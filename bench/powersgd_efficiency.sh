#!/usr/bin/env bash
# PowerSGD's efficiency in its steady state: 2 "hosts" on shaped links (bench/cluster.sh), one rank
# and one thread each, against the serial run of the same global batch. Serial and 2-host runs
# alternate, starting and ending with serial ones: each 2-host run is compared with the mean of
# the serial runs just before and just after it, so that a machine whose speed drifts is compared
# with itself; the spread of the repeats is the noise.
#
# Two baselines, because the hosts here share one machine:
#   alone         one serial run on an otherwise idle machine: the issue's efficiency, what a real
#                 cluster of one-rank hosts is measured against;
#   side by side  two serial runs at once, one per host's cores, nothing exchanged: the machine as
#                 loaded as during the 2-host run (the hosts' memory, caches and cores shared).
#                 2-host images/s over the pair's summed images/s is the part of the efficiency
#                 that communication and compression cost; alone / side by side is what the
#                 simulation itself costs, which real hosts do not pay.
#
#   bench/powersgd_efficiency.sh DATA [RATE]      (default RATE: 1gbit)
#   environment: SIZE (128), BATCH per rank (16), STEPS (60), RANK (4), REPEATS (3),
#                START: uncompressed steps first (0; 10 with PEER, the peer's own setting)
#                PEER: the Python peer (torch_reference.py) to measure the same way, interleaved
#                      with histotrain: its PowerSGD hook (rank 4, error feedback, warm start)
#                CPUS_PER_HOST: each host's rank on its own cores (cluster.sh --cpus-per-host), the
#                      serial runs alone on host 0's, side by side on host 0's and host 1's
#                      (0: the kernel places every process)
#                SIDE_BY_SIDE: 0 leaves the side-by-side baseline out (1)
#
# Prints one row per program and repeat: serial images/s alone (before, after), side by side
# (before, after; each host's), 2-host images/s, efficiency (2-host / (2 x mean serial alone)),
# communication efficiency (2-host / mean side-by-side sum), and for histotrain rank 0's PowerSGD
# arithmetic and time after backward per step (summary.json's reducer_profile), each host's time
# after backward (rank_step_times_ms), the step time, the share of the step that rank 0's
# arithmetic during backward and its time after backward take (the arithmetic after backward is
# inside the latter; measured within the run, so the machine's drift between runs does not enter
# it; waiting for a slower host does) and the same for the slower host alone (it waits for no
# one, so the hosts' difference in speed does not enter it either); then each
# program's medians and ranges. The peer's PowerSGD sometimes aborts inside PyTorch 1.13's Gloo:
# such a run is started again, up to 3 times, and its row says how many starts it took.
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
DATA=${1:?usage: bench/powersgd_efficiency.sh DATA [RATE]}
RATE=${2:-1gbit}
SIZE=${SIZE:-128}
BATCH=${BATCH:-16}
STEPS=${STEPS:-60}
RANK=${RANK:-4}
REPEATS=${REPEATS:-3}
PEER=${PEER:-}
CPUS_PER_HOST=${CPUS_PER_HOST:-0}
SIDE_BY_SIDE=${SIDE_BY_SIDE:-1}
if [ -n "$PEER" ]; then START=${START:-10}; else START=${START:-0}; fi
if [ -n "$PEER" ] && [ "$RANK" != 4 ]; then echo "powersgd_efficiency.sh: the peer's PowerSGD is rank 4" >&2; exit 2; fi
PY=/usr/bin/python3
source bench/cluster_runs.sh
WORK=$(mktemp -d /tmp/histotrain-powersgd.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CPU="$(lscpu | sed -n 's/^Model name: *//p') (family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'))"
echo "# $CPU, $(nproc) cores; ResNet-18 $SIZE px, batch $BATCH per rank, $STEPS steps, PowerSGD rank $RANK after $START uncompressed steps, $RATE, $CPUS_PER_HOST cores per host (0: not pinned); $(date -u +%F)"

train_flags() {  # $1: per-rank batch, $2: steps
  echo "--data $DATA --image-size $SIZE --batch-size $1 --epochs 1 --max-steps ${2:-$STEPS} --val-fraction 0 \
--threads 1 --conv-grad native --quiet --cache-dir $WORK/cache"
}
peer_flags() {  # $1: per-rank batch. The peer decodes its JPEGs inside the timed loop (--workers 0).
  echo "$PEER --data $DATA --image-size $SIZE --batch-size $1 --max-steps $STEPS --threads 1 --workers 0"
}
on_host() {  # $1: host index, then a command: run on that host's cores (cluster.sh's layout)
  local host=$1
  shift
  if [ "$CPUS_PER_HOST" = 0 ]; then "$@"; else taskset -c "$((host * CPUS_PER_HOST))-$(((host + 1) * CPUS_PER_HOST - 1))" "$@"; fi
}

# One program's runs; $1: histotrain or peer, $2: the run's name. Each leaves $WORK/$1-$2.rate.
serial() {  # $3: the host whose cores it runs on (0)
  local host=${3:-0}
  if [ "$1" = histotrain ]; then
    on_host "$host" build/histotrain train $(train_flags $((2 * BATCH))) --out "$WORK/histotrain-$2" >/dev/null 2>&1
    histotrain_rate "$WORK/histotrain-$2" >"$WORK/histotrain-$2.rate"
  else
    OMP_NUM_THREADS=1 on_host "$host" "$PEER_PYTHON" $(peer_flags $((2 * BATCH))) >"$WORK/peer-$2.log" 2>&1
    peer_rate "$WORK/peer-$2.log" >"$WORK/peer-$2.rate"
  fi
}
# Two serial runs started together, one per host, nothing exchanged; the rate is their sum. They
# run the same steps on the same data, so each spends at most a few seconds of its run alone.
side_by_side() {
  local a b
  serial "$1" "$2-host0" 0 & a=$!
  serial "$1" "$2-host1" 1 & b=$!
  wait "$a" && wait "$b"
  $PY -c 'import sys; print(round(sum(float(open(f).read()) for f in sys.argv[1:]), 2))' \
    "$WORK/$1-$2-host0.rate" "$WORK/$1-$2-host1.rate" >"$WORK/$1-$2.rate"
}
baselines() {  # $1: program, $2: index: serial-$2 and, with SIDE_BY_SIDE, side-$2
  serial "$1" "serial-$2"
  [ "$SIDE_BY_SIDE" = 0 ] || side_by_side "$1" "side-$2"
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
        "$PEER_PYTHON" $(peer_flags "$BATCH") --comm-hook powersgd >"$WORK/peer-$2.log" 2>&1; then
        peer_rate "$WORK/peer-$2.log" >"$WORK/peer-$2.rate"
        return 0
      fi
    done
    return 1
  fi
}

row() {  # $1: program, $2: repeat (its 2-host run is two-$2, the baselines before it index $2 - 1, after it $2)
  local program=$1 repeat=$2
  $PY - "$program" "$repeat" "$WORK" <<'PYEOF'
import json, os, sys
program, repeat, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rate(name):
    path = f"{work}/{program}-{name}.rate"
    return float(open(path).read()) if os.path.exists(path) else None
def pair(kind):
    return rate(f"{kind}-{repeat - 1}"), rate(f"{kind}-{repeat}")
def shown(values):
    return "-" if None in values else ", ".join(f"{v:.2f}" for v in values)
def hosts(index):  # a side-by-side pair as "host 0 + host 1": they differ when the cores do
    return f"{rate(f'side-{index}-host0'):.2f} + {rate(f'side-{index}-host1'):.2f}"
alone, side = pair("serial"), pair("side")
side_shown = "-" if None in side else f"{hosts(repeat - 1)}, {hosts(repeat)}"
failed = f"{work}/{program}-two-{repeat}.failed"
if os.path.exists(failed):  # the efficiency cells stay "-", which the summary skips
    print(f"| {program} | {repeat} | {shown(alone)} | {side_shown} | failed: {open(failed).read().strip()} | - | - | - | - | - | - | - | - |")
    sys.exit(0)
two = rate(f"two-{repeat}")
efficiency = two / sum(alone)  # 2-host / (2 x mean of the two serial runs)
communication = "-" if None in side else f"{2 * two / sum(side):.3f}"  # 2-host / mean pair sum
if program == "histotrain":
    summary = json.load(open(f"{work}/histotrain-two-{repeat}/summary.json"))
    p, step_ms = summary["reducer_profile"], 1000 * summary["train_s"] / summary["steps"]
    # Within the run, so free of the machine's drift; a wait for a slower host counts in it. The
    # arithmetic done after backward is already inside the time after backward.
    share = (p["compression_during_backward_ms"] + p["exposed_ms"]) / step_ms
    # Each host's own: the one that waits least after backward is the slower one, which waits
    # for no one; its share is PowerSGD's and the link's without the hosts' difference in speed.
    ranks = summary.get("rank_step_times_ms") or []
    after = " / ".join(f"{r['after_backward']:.1f}" for r in ranks) or "-"
    own = min(((r["compression_during_backward"] + r["after_backward"]) / step_ms for r in ranks), default=None)
    own_shown = "-" if own is None else f"{own:.1%}"
    extra = f"{p['compression_ms']:.1f} | {p['exposed_ms']:.1f} | {after} | {step_ms:.0f} | {share:.1%} | {own_shown} |"
else:
    starts = int(open(f"{work}/peer-two-{repeat}.starts").read())
    extra = "- | - | - | - | - | - |" + (f" started {starts} times (Gloo aborts)" if starts > 1 else "")
print(f"| {program} | {repeat} | {shown(alone)} | {side_shown} | {two:.2f} | {efficiency:.3f} | {communication} | {extra}")
PYEOF
}
summary() {  # the table's rows on stdin
  $PY -c '
import statistics, sys
by = {}
for l in sys.stdin:
    cells = [c.strip() for c in l.split("|")]
    if len(cells) < 9 or not cells[2].isdigit():
        continue
    for column, name in ((6, "efficiency"), (7, "communication efficiency"), (13, "own share of the slower host")):
        try: value = float(cells[column].rstrip("%")) / (100 if cells[column].endswith("%") else 1)
        except (ValueError, IndexError): value = None  # a failed run, no side-by-side baseline, the peer
        by.setdefault((cells[1], name), [])
        if value is not None: by[(cells[1], name)].append(value)
for (program, name), e in by.items():
    if not e:
        if program == "histotrain" or "share" not in name:
            print(f"{program}: {name}: none (no completed 2-host run, or SIDE_BY_SIDE=0)")
        continue
    e.sort()
    print(f"{program}: {name} over {len(e)} repeats: median {statistics.median(e):.3f}, range {e[0]:.3f}-{e[-1]:.3f}")'
}

PROGRAMS=(histotrain)
[ -z "$PEER" ] || PROGRAMS+=(peer)
# The tile cache, once, outside every figure.
build/histotrain train $(train_flags 2 1) --out "$WORK/warm" >/dev/null 2>&1
{
  echo "| program | repeat | serial alone images/s, before and after | side by side images/s (host 0 + host 1), before and after | 2 hosts images/s | efficiency | communication efficiency | PowerSGD arithmetic ms/step | after backward ms/step | after backward, host 0 / host 1 | step ms | both, share of the step | the slower host's own share |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for program in "${PROGRAMS[@]}"; do baselines "$program" 0; done
  for repeat in $(seq 1 "$REPEATS"); do
    for program in "${PROGRAMS[@]}"; do
      two_hosts "$program" "two-$repeat" || failure "$WORK/$program-two-$repeat.logs" >"$WORK/$program-two-$repeat.failed"
      baselines "$program" "$repeat"
      row "$program" "$repeat"
    done
  done
} | tee "$WORK/table"
echo
summary <"$WORK/table"
