#!/usr/bin/env bash
# Fuzzes the JPEG decode + resize path with libFuzzer for a bounded time (clang, ASan, UBSan).
#
#   bench/fuzz.sh [SECONDS]        (default 120; needs clang and libturbojpeg0-dev)
#
# Seeds: a few synthetic tiles from `histotrain synth` (grey, 4:4:4, 4:2:0, large and small) when
# build/histotrain exists. A crash leaves crash-* files in build-fuzz/; each one becomes a
# regression test in tests/test_jpeg.cpp. Prints libFuzzer's summary: runs, coverage, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-120}
OUT=build-fuzz
mkdir -p "$OUT/corpus"
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc \
  fuzz/fuzz_jpeg.cpp src/data/jpeg.cpp src/data/resize.cpp src/util/files.cpp -lturbojpeg -o "$OUT/fuzz_jpeg"
if [ -x build/histotrain ] && [ -z "$(ls -A "$OUT/corpus")" ]; then
  seeds=$(mktemp -d)
  build/histotrain synth --out "$seeds" --per-class 2 --size 48 --seed 3 --quiet
  build/histotrain synth --out "$seeds/large" --per-class 1 --size 300 --seed 4 --quiet
  find "$seeds" -name '*.jpeg' -exec cp {} "$OUT/corpus/" \;
  rm -rf "$seeds"
fi
cd "$OUT"
./fuzz_jpeg -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -print_final_stats=1 corpus 2>&1 | tail -25
