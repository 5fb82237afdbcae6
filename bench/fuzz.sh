#!/usr/bin/env bash
# Fuzzes histotrain's readers of untrusted bytes with libFuzzer for a bounded time (clang, ASan,
# UBSan), one target after the other:
#   jpeg        the JPEG decode + resize path every tile takes into the cache
#   image       every format's decoder behind decode_image (PNG, TIFF, BMP, WebP, JPEG) + resize
#   tile_cache  the tile-cache reader (header, sizes, completion flag, checksum)
#   safetensors the checkpoint weights reader (header, dtypes, shapes, offsets, names)
#   pytorch_weights  the --init reader of torch.save files (zip directory, restricted unpickler)
#   csv         the CSV and list-file readers (quoting, line bounds, byte-order marks, CR-only
#               line ends), csv_field's round trip, and every name's round trip through a list
#   json        the bounded JSON reader of plans, studies, checkpoints and caches (nesting limit)
#   geojson     the QuPath GeoJSON reader `tile` labels tiles from, and its write-and-read-back
#
#   bench/fuzz.sh [SECONDS] [jpeg|image|tile_cache|safetensors|pytorch_weights|csv|json|geojson|all]   (default 120 s each, all;
#                needs clang, the image libraries run.sh installs, libtbb-dev, libtorch-dev, imagemagick)
#
# Seeds, when build/histotrain exists: synthetic tiles from `histotrain synth` (grey, 4:4:4,
# 4:2:0, large and small), the same converted by ImageMagick to each other format, and a real tile cache of five 16 px tiles. A crash leaves crash-* files
# in build-fuzz/TARGET/; each one becomes a regression test (tests/test_jpeg.cpp,
# tests/test_tile_cache.cpp). Prints libFuzzer's summary per target: runs, coverage, crashes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-120}
WHICH=${2:-all}
FLAGS=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc)

seed_jpeg() {
  local corpus=$1 seeds
  seeds=$(mktemp -d)
  build/histotrain synth --out "$seeds" --per-class 2 --size 48 --seed 3 --quiet
  build/histotrain synth --out "$seeds/large" --per-class 1 --size 300 --seed 4 --quiet
  find "$seeds" -name '*.jpeg' -exec cp {} "$corpus/" \;
  rm -rf "$seeds"
}

# One synthetic tile in each format and variant the decoders take (tests/test_image_formats.cpp
# names them), small enough for libFuzzer to mutate.
seed_image() {
  local corpus=$1 seeds tile
  seeds=$(mktemp -d)
  build/histotrain synth --out "$seeds" --per-class 1 --size 32 --seed 6 --quiet
  tile=$(find "$seeds" -name '*.jpeg' | head -1)
  cp "$tile" "$corpus/tile.jpeg"
  convert "$tile" "$corpus/rgb.png"
  convert "$tile" -interlace PNG -depth 16 "$corpus/rgb16-interlaced.png"
  convert "$tile" -colors 16 "PNG8:$corpus/palette.png"
  convert "$tile" -colorspace Gray -alpha set -channel A -evaluate set 50% "$corpus/grey-alpha.png"
  convert "$tile" -compress LZW "$corpus/lzw.tif"
  convert "$tile" -compress Zip -define tiff:tile-geometry=16x16 "$corpus/tiled-deflate.tif"
  convert "$tile" -compress JPEG "$corpus/jpeg.tif"
  convert "$tile" "PTIF:$corpus/pyramid.tif"
  convert "$tile" "BMP3:$corpus/tile.bmp"
  convert "$tile" -define webp:lossless=true "$corpus/lossless.webp"
  convert "$tile" -quality 80 "$corpus/lossy.webp"
  rm -rf "$seeds"
}

seed_tile_cache() {
  local corpus=$1 seeds
  seeds=$(mktemp -d)
  build/histotrain synth --out "$seeds/data" --per-class 1 --size 32 --seed 5 --quiet
  # Training fails (too few images) after the cache is built: the cache is all this needs.
  build/histotrain train --data "$seeds/data" --image-size 16 --cache-dir "$seeds/cache" --val-fraction 0 \
    --epochs 1 --max-steps 1 --batch-size 2 --quiet --out "$seeds/run" >/dev/null 2>&1 || true
  find "$seeds/cache" -name '*.tiles' -exec cp {} "$corpus/" \;
  rm -rf "$seeds"
}

seed_safetensors() {
  local corpus=$1
  # A file of the fuzz target's two tensors, written by the format's rules: header, then data.
  python3 - "$corpus/seed.safetensors" <<'PY'
import json, struct, sys
header = {"weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
          "steps": {"dtype": "I64", "shape": [], "data_offsets": [24, 32]}, "__metadata__": {"format": "pt"}}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + bytes(32))
PY
}

# State dicts as Python's torch.save writes them: a small module's, a ResNet block's in float16,
# and a training checkpoint that wraps one.
seed_pytorch_weights() {
  local corpus=$1
  /usr/bin/python3 - "$corpus" <<'PY'
import sys, torch
out = sys.argv[1]
small = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2))
torch.save(small.state_dict(), f"{out}/small.pth")
torch.save({k: v.half() if v.is_floating_point() else v for k, v in small.state_dict().items()}, f"{out}/half.pth")
torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in small.state_dict().items()}}, f"{out}/wrapped.pth")
torch.save({"t": torch.arange(12.0).view(3, 4).t(), "v": torch.arange(12.0)[2:8]}, f"{out}/views.pth")
PY
}

seed_csv() {
  local corpus=$1
  printf 'filename,label,group_id\na.jpeg,lung_n,g1\n"b,c.jpeg",lung_n,"g""2"\n' >"$corpus/groups.csv"
  printf '# split\nlung_n/a.jpeg\r\nlung_n/b.jpeg\n' >"$corpus/list.txt"
  printf 'path\n"a\nb.jpeg"\n#c.jpeg\n' >"$corpus/list.csv"
  printf '\xef\xbb\xbfpath,label\ra.png,x\r' >"$corpus/bom-cr.csv"
}

seed_json() {
  local corpus=$1
  printf '{"study": {"plan": {}}, "training": [{"config": "serial", "images_per_s": 1.5}], "decode": []}' >"$corpus/results.json"
  printf '[[[[{"a": [1, 2, {"b": null}]}]]]]' >"$corpus/nested.json"
}

seed_geojson() {
  local corpus=$1
  build/histotrain synth --slide --width 512 --height 384 --out "$corpus/slide" >/dev/null
  cp "$corpus/slide/slide-1.geojson" "$corpus/synthetic.geojson"
  rm -rf "$corpus/slide"
  printf '[{"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[[[0, 0], [9, 0], [9, 9]], [[1, 1], [2, 1], [2, 2]]]]}, "properties": {"classification": "x"}}]' >"$corpus/multi.json"
}

fuzz() {
  local target=$1 max_len=$2
  shift 2
  local out=build-fuzz/$target
  mkdir -p "$out/corpus"
  echo "== fuzz_$target"
  clang++ "${FLAGS[@]}" "fuzz/fuzz_$target.cpp" "$@" -o "$out/fuzz_$target"
  if [ -x build/histotrain ] && [ -z "$(ls -A "$out/corpus")" ]; then "seed_$target" "$out/corpus"; fi
  (cd "$out" && "./fuzz_$target" -max_total_time="$SECONDS_TO_RUN" -max_len="$max_len" -print_final_stats=1 corpus 2>&1 |
     tail -25)
}

# Every decoder, with its library: what a tile passes through on its way to the cache.
DECODE=(src/data/decode.cpp src/data/image_format.cpp src/data/jpeg.cpp src/data/png_decode.cpp
        src/data/tiff_decode.cpp src/data/webp_decode.cpp src/data/bmp_decode.cpp src/data/resize.cpp
        src/util/files.cpp src/util/csv.cpp -I/usr/include/stb -lturbojpeg -lpng16 -ltiff -lwebp -lstb)
case "$WHICH" in jpeg|all) fuzz jpeg 65536 "${DECODE[@]}" ;; esac
case "$WHICH" in image|all) fuzz image 262144 "${DECODE[@]}" ;; esac
case "$WHICH" in
  tile_cache|all)
    fuzz tile_cache 16384 src/data/tile_cache.cpp src/util/progress.cpp "${DECODE[@]}" -ltbb ;;
esac
case "$WHICH" in
  safetensors|all)
    fuzz safetensors 65536 src/model/safetensors.cpp src/util/files.cpp src/util/csv.cpp src/util/json_file.cpp \
      -I/usr/include/torch/csrc/api/include \
      -ltorch -ltorch_cpu -lc10 ;;
esac
case "$WHICH" in
  pytorch_weights|all)
    fuzz pytorch_weights 65536 src/model/pytorch_weights.cpp src/model/stored_zip.cpp src/model/state_dict_pickle.cpp \
      src/model/safetensors.cpp src/util/files.cpp src/util/csv.cpp src/util/json_file.cpp \
      -I/usr/include/torch/csrc/api/include -ltorch -ltorch_cpu -lc10 ;;
esac
case "$WHICH" in csv|all) fuzz csv 65536 src/util/csv.cpp src/util/files.cpp ;; esac
case "$WHICH" in json|all) fuzz json 65536 src/util/json_file.cpp src/util/files.cpp src/util/csv.cpp ;; esac
case "$WHICH" in
  geojson|all) fuzz geojson 65536 src/slide/geojson.cpp src/util/polygon.cpp src/util/json_file.cpp src/util/files.cpp \
    src/util/csv.cpp ;;
esac
