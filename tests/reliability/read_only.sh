#!/usr/bin/env bash
# Run by Reliability.OutputTurningReadOnlyMidRun... inside a mount namespace of its own
# (unshare -m): the run folder's file system is remounted read-only once the first checkpoint
# exists, as after a storage fault; then the checkpoint evaluates. Prints one line per step.
#   read_only.sh HISTOTRAIN DATA OUT
set -u
histotrain=$1 data=$2 out=$3
mkdir -p "$out"
mount -t tmpfs -o size=400m tmpfs "$out"
"$histotrain" train --data "$data" --image-size 32 --batch-size 16 --epochs 4 --threads 2 --quiet --out "$out/run" &
pid=$!
# Wait for the state (a first checkpoint), at most 60 s.
for _ in $(seq 1200); do [ -e "$out/run/checkpoint.json" ] && break; sleep 0.05; done
mount -o remount,ro "$out"
wait $pid
echo "train exit $?"
"$histotrain" eval --checkpoint "$out/run" --data "$data" --quiet >/dev/null
echo "eval exit $?"
