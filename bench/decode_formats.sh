#!/usr/bin/env bash
# Decode speed per tile format: images/s with 1 and 2 threads for the same tiles as JPEG (the
# release's files), PNG, TIFF (LZW), WebP (lossy, quality 90, and lossless) and BMP, each decoded
# at full size and resized to the tile side as the cache builds it (histotrain decode-bench). The
# copies are made by ImageMagick in a scratch folder, removed at the end. Prints a markdown table
# and the CPU model; docs/benchmarks.md keeps the figures.
#
#   bench/decode_formats.sh [DATA] [COUNT] [SIZE]   (default ../shared/data/lc25000-dev, 500 lung
#                                                    tiles of 224 px, decoded to 224 px)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/lc25000-dev}
COUNT=${2:-500}
SIZE=${3:-224}
BIN=build/histotrain
[ -x "$BIN" ] || { echo "build first: ./run.sh build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

find "$DATA" -path '*lung_image_sets*' -name '*.jpeg' | sort | sed -n "1,${COUNT}p" >"$work/sources.txt"
[ -s "$work/sources.txt" ] || { echo "no lung tiles under $DATA" >&2; exit 1; }

# convert_all NAME EXTENSION OPTIONS...: the sources as NAME/<n>.EXTENSION, listed in NAME.txt.
convert_all() {
  local name=$1 ext=$2
  shift 2
  mkdir -p "$work/$name"
  local n=0
  while read -r source; do
    convert "$source" "$@" "$work/$name/$n.$ext"
    echo "$work/$name/$n.$ext"
    n=$((n + 1))
  done <"$work/sources.txt" >"$work/$name.txt"
}

cp "$work/sources.txt" "$work/jpeg.txt"
convert_all png png
convert_all tiff-lzw tif -compress LZW
convert_all webp-lossy webp -quality 90
convert_all webp-lossless webp -define webp:lossless=true
convert_all bmp bmp

# The best of three passes (after a warm-up that also fills the page cache), images/s.
rate() {
  local list=$1 threads=$2 best=0
  "$BIN" decode-bench --list "$list" --size "$SIZE" --threads "$threads" >/dev/null
  for _ in 1 2 3; do
    best=$("$BIN" decode-bench --list "$list" --size "$SIZE" --threads "$threads" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["failed"] == 0, r
best = float(sys.argv[1])
print(max(best, r["images"] / r["seconds"]))' "$best")
  done
  printf '%.0f' "$best"
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(wc -l <"$work/sources.txt") tiles decoded to $SIZE px"
echo
echo "| format | mean file size | 1 thread, images/s | 2 threads, images/s |"
echo "| --- | ---: | ---: | ---: |"
for name in jpeg png tiff-lzw webp-lossy webp-lossless bmp; do
  kb=$(xargs -a "$work/$name.txt" -d '\n' stat -c %s | awk '{s += $1} END {printf "%.0f", s / NR / 1024}')
  echo "| $name | $kb KiB | $(rate "$work/$name.txt" 1) | $(rate "$work/$name.txt" 2) |"
done
