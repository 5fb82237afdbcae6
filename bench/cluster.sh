#!/usr/bin/env bash
# A cluster of N hosts on this machine: each host a network namespace with its own address on a
# bridge, every link shaped with tbf to one bandwidth in both directions, and one rank of COMMAND
# started in each, with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
# LOCAL_WORLD_SIZE, MASTER_ADDR = host 0's address, MASTER_PORT): ranks meet as they would on
# real hosts, over a link as slow as the one asked for. histotrain and the Python peer
# (torch_reference.py) both read these variables.
#
#   bench/cluster.sh [--hosts N] [--rate RATE] [--cpus-per-host K] [--log DIR] -- COMMAND [ARGS...]
#     --hosts N   hosts, one rank each (default 2)
#     --rate R    each host's link, as tc writes it: 1gbit, 10gbit, 200mbit (default 1gbit)
#     --cpus-per-host K   host k's rank runs on cores kK..kK+K-1 only (taskset), as on hosts of
#                 K cores each; needs N x K cores (default 0: the kernel places the ranks)
#     --log DIR   rank k's output in DIR/rank-k.log (default: a temporary folder, printed)
#   Exit code: the first failing rank's, else 0. Rank 0's output is also shown.
#
# Needs root and iproute2 (ip, tc with the tbf qdisc). Namespaces, links and ranks are removed on
# exit, on Ctrl-C and on failure. Example: 2 hosts at 1 Gbit/s, one thread per rank:
#   bench/cluster.sh --hosts 2 --rate 1gbit -- build/histotrain train --data D --threads 1 --out runs/c
set -euo pipefail
HOSTS=2
RATE=1gbit
CPUS=0
LOG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) HOSTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --cpus-per-host) CPUS=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "cluster.sh: unknown option '$1' (usage in the script's header)" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "cluster.sh: no command after --" >&2; exit 2; }
[[ "$HOSTS" =~ ^[0-9]+$ ]] && [ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 200 ] || { echo "cluster.sh: --hosts 1..200" >&2; exit 2; }
[[ "$CPUS" =~ ^[0-9]+$ ]] && [ "$CPUS" -le 1024 ] || { echo "cluster.sh: --cpus-per-host 0..1024" >&2; exit 2; }
if [ "$CPUS" -gt 0 ] && [ $((HOSTS * CPUS)) -gt "$(nproc)" ]; then
  echo "cluster.sh: $HOSTS hosts x $CPUS cores need $((HOSTS * CPUS)) cores; this machine has $(nproc)" >&2
  exit 2
fi

# The rate in bits per second, for the token bucket's burst (10 ms of traffic, at least 64 KiB).
rate_bits() {
  local r=${1,,} n unit
  [[ "$r" =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] || { echo "cluster.sh: --rate like 1gbit, 200mbit" >&2; exit 2; }
  n=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[2]}
  case $unit in bit) echo "$n" ;; kbit) echo $((n * 1000)) ;; mbit) echo $((n * 1000000)) ;; gbit) echo $((n * 1000000000)) ;; esac
}
BITS=$(rate_bits "$RATE")
BURST=$((BITS / 8 / 100)); [ "$BURST" -ge 65536 ] || BURST=65536

TAG=hc$(( $$ % 100000 ))  # interface names stay under 16 characters
SUBNET=10.$(( 100 + $$ % 100 )).$(( $$ / 100 % 250 ))
BRIDGE=${TAG}br
PIDS=()
if [ -z "$LOG" ]; then LOG=$(mktemp -d /tmp/histotrain-cluster.XXXXXX); fi
mkdir -p "$LOG"

cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Each veth pair from its root end first: a namespace's links otherwise vanish a moment after it.
  for ((i = 0; i < HOSTS; i++)); do ip link del "${TAG}p$i" 2>/dev/null || true; done
  for ((i = 0; i < HOSTS; i++)); do ip netns del "$TAG-$i" 2>/dev/null || true; done
  ip link del "$BRIDGE" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! ip link add "$BRIDGE" type bridge 2>/dev/null; then
  echo "cluster.sh: cannot create network links here (needs root and iproute2's ip)" >&2
  exit 1
fi
ip link set "$BRIDGE" up
for ((i = 0; i < HOSTS; i++)); do
  ns=$TAG-$i
  ip netns add "$ns"
  ip link add "${TAG}h$i" type veth peer name "${TAG}p$i"
  ip link set "${TAG}h$i" netns "$ns"
  ip link set "${TAG}p$i" master "$BRIDGE" up
  ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev "${TAG}h$i"
  ip -n "$ns" link set "${TAG}h$i" up
  ip -n "$ns" link set lo up
  # Both directions of the host's link: what it sends, and what the bridge sends it.
  tc -n "$ns" qdisc add dev "${TAG}h$i" root tbf rate "$RATE" burst "$BURST" latency 100ms
  tc qdisc add dev "${TAG}p$i" root tbf rate "$RATE" burst "$BURST" latency 100ms
done
echo "cluster: $HOSTS host(s) on $SUBNET.0/24, each link shaped to $RATE (tbf); logs in $LOG" >&2

PORT=$(( 20000 + $$ % 20000 ))
for ((i = 0; i < HOSTS; i++)); do
  # GLOO_SOCKET_IFNAME: PyTorch's Gloo would otherwise advertise the address its host name
  # resolves to (127.0.0.1 here), which the other hosts cannot reach.
  pin=()
  [ "$CPUS" -eq 0 ] || pin=(taskset -c "$((i * CPUS))-$((i * CPUS + CPUS - 1))")
  RANK=$i WORLD_SIZE=$HOSTS LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=$SUBNET.1 MASTER_PORT=$PORT OMP_NUM_THREADS=1 \
    GLOO_SOCKET_IFNAME=${TAG}h$i ip netns exec "$TAG-$i" "${pin[@]+"${pin[@]}"}" "$@" >"$LOG/rank-$i.log" 2>&1 &
  PIDS+=($!)
done
# As ranks end: the first that fails stops the others (a rank waiting for a dead peer would
# otherwise wait for its whole timeout).
status=0
running=("${PIDS[@]}")
while [ ${#running[@]} -gt 0 ]; do
  still=()
  for pid in "${running[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then still+=("$pid"); continue; fi
    code=0
    wait "$pid" || code=$?
    if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$code
      echo "cluster: a rank failed (exit $code); stopping the others. Logs: $LOG/rank-*.log" >&2
      for other in "${PIDS[@]}"; do kill "$other" 2>/dev/null || true; done
    fi
  done
  running=("${still[@]+"${still[@]}"}")
  [ ${#running[@]} -eq 0 ] || sleep 0.2
done
PIDS=()
cat "$LOG/rank-0.log"
exit "$status"
