#!/usr/bin/env bash
# Run by Reliability.FullDiskWhileWriting... inside a mount namespace of its own (unshare -m):
# a 200 MiB file system that fills while a checkpoint is written (one ResNet-18 checkpoint of
# 135 MB fits, two do not), a 1 MiB one too small for a tile cache, and a full disk under a
# study's report. Prints one line per step for the test to check.
#   full_disk.sh HISTOTRAIN DATA SMALL TINY
set -u
histotrain=$1 data=$2 small=$3 tiny=$4
mkdir -p "$small" "$tiny"
mount -t tmpfs -o size=200m tmpfs "$small"
mount -t tmpfs -o size=1m tmpfs "$tiny"
"$histotrain" train --data "$data" --image-size 32 --batch-size 16 --epochs 3 --threads 2 --quiet --out "$small/run"
echo "train exit $?"
"$histotrain" eval --checkpoint "$small/run" --data "$data" --quiet >/dev/null
echo "eval exit $?"
echo "epoch in checkpoint: $(grep -o '"epoch": [0-9]*' "$small/run/checkpoint.json")"
echo "left behind: $(ls "$small/run" | grep -c -E 'next|tmp')"
"$histotrain" train --data "$data" --image-size 64 --epochs 1 --quiet --cache-dir "$tiny" --out "$small/cache-run"
echo "cache exit $?"
echo "tile cache files: $(ls -A "$tiny" | grep -c tiles)"
# A study with no runs yet, its report written on the disk filled to the last byte.
mkdir "$small/study"
echo '{"study": {"plan": {}}, "training": [], "decode": [], "accuracy": []}' >"$small/study/results.json"
cat /dev/zero >"$small/filler" 2>/dev/null
"$histotrain" report "$small/study"
echo "report exit $?"
echo "results kept: $(grep -c training "$small/study/results.json")"
