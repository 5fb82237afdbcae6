#!/usr/bin/env bash
# Slide prediction speed: tiles/s of `histotrain predict --slide` next to the Python way
# (../shared/peers/slide_reference.py: openslide-python, Otsu on a thumbnail, a DataLoader of tile
# reads, torchvision) on the same synthetic slide, the same grid of 224-px level-0 tiles and the
# same threads, in one run. ResNet-18 classifies each tile at 64 px (read from the level nearest,
# then resized) and at 224 px (level 0 as it is). Both sides' figures cover the thumbnail, the
# tissue, the reads and the model, not start-up or pictures; the peer runs with 1 and with
# THREADS DataLoader workers and its better figure is the one compared. The weights are one
# step's (speed does not depend on them) and the same file for both: histotrain's safetensors,
# loaded by the peer under torchvision's names.
#
#   bench/slide.sh [WIDTH] [HEIGHT] [THREADS] [REPEATS]   (default 8192 6144, all cores, best of 3)
# --peer-python PY (anywhere among the arguments): the interpreter that runs the Python peer
# (default /usr/bin/python3, PyTorch 1.13; PyTorch 2.11: --peer-python "$(bench/torch2_env.sh)").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
WIDTH=${1:-8192}
HEIGHT=${2:-6144}
THREADS=${3:-$(nproc)}
REPEATS=${4:-3}
BIN=build/histotrain
PEER=../shared/peers/slide_reference.py
[ -x "$BIN" ] || { echo "build first: ./run.sh build" >&2; exit 1; }
[ -f "$PEER" ] || { echo "no peer at $PEER" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$BIN" info
"$BIN" synth --slide --width "$WIDTH" --height "$HEIGHT" --seed 5 --out "$work/slide" --quiet >/dev/null
SLIDE=$work/slide/slide-1.tif
MPP=0.5  # synth --slide's default level-0 microns per pixel
"$BIN" synth --out "$work/tiles" --per-class 4 --size 224 --quiet

# ResNet-18 at SIZE px after one step, and its weights as a torch.save state dict for the peer.
model() {
  local size=$1
  "$BIN" train --data "$work/tiles" --arch resnet18 --image-size "$size" --epochs 1 --max-steps 1 --batch-size 8 \
    --val-fraction 0 --bootstrap 0 --quiet --out "$work/run-$size" >/dev/null 2>&1
  /usr/bin/python3 - "$work/run-$size/model.safetensors" "$work/run-$size/state_dict.pth" <<'PY'
import json, struct, sys
import numpy as np, torch
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + n])
dtypes = {'F32': np.float32, 'I64': np.int64}
state = {}
for name, t in header.items():
    if name == '__metadata__':
        continue
    begin, end = t['data_offsets']
    state[name] = torch.from_numpy(np.frombuffer(data[8 + n + begin:8 + n + end], dtypes[t['dtype']]).reshape(t['shape']).copy())
torch.save(state, sys.argv[2])
PY
}

# histotrain's tiles/s over the slide (best of REPEATS), and its tile count.
ours() {
  local size=$1 best=0 tiles=0
  # A tile of 224 level-0 pixels seen at SIZE px: SIZE px at MPP * 224 / SIZE microns each.
  local mpp
  mpp=$(python3 -c "print($MPP * 224 / $size)")
  for _ in $(seq "$REPEATS"); do
    rm -rf "$work/pred"
    "$BIN" predict --checkpoint "$work/run-$size" --slide "$SLIDE" --tile-size "$size" --mpp "$mpp" \
      --threads "$THREADS" --workers "$THREADS" --quiet --out "$work/pred" 2>/dev/null
    read -r best tiles < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
assert s["tile"]["level0_side"] == 224, s["tile"]
print(max(float(sys.argv[2]), s["tiles_per_s"]), s["tiles"])' "$work/pred/slide-1/summary.json" "$best")
  done
  echo "$best $tiles"
}

# The peer's tiles/s with WORKERS DataLoader workers (best of REPEATS), and its tile count.
peer() {
  local size=$1 workers=$2 best=0 tiles=0
  for _ in $(seq "$REPEATS"); do
    read -r best tiles < <("$PEER_PYTHON" "$PEER" --slide "$SLIDE" --tile-size 224 --image-size "$size" \
      --weights "$work/run-$size/state_dict.pth" --threads "$THREADS" --workers "$workers" 2>/dev/null |
      python3 -c '
import json, sys
r = json.loads([l for l in sys.stdin if l.startswith("RESULT ")][-1][7:])
print(max(float(sys.argv[1]), r["tiles_per_s"]), r["tiles"])' "$best")
  done
  echo "$best $tiles"
}

echo
echo "slide: ${WIDTH} x ${HEIGHT} px at ${MPP} um/px (synthetic), tiles of 224 level-0 px; ${THREADS} threads; best of ${REPEATS}"
echo "peer: $PEER ($PEER_PYTHON, PyTorch $PEER_TORCH)"
echo
echo "| model input | histotrain tiles/s (tiles) | peer, 1 worker | peer, ${THREADS} workers | histotrain / best peer |"
echo "| --- | ---: | ---: | ---: | ---: |"
for size in 64 224; do
  model "$size"
  read -r ours_rate ours_tiles < <(ours "$size")
  read -r peer1_rate peer_tiles < <(peer "$size" 1)
  read -r peerN_rate _ < <(peer "$size" "$THREADS")
  ratio=$(python3 -c "print(f'{$ours_rate / max($peer1_rate, $peerN_rate):.2f}')")
  printf '| ResNet-18, %s px | %.1f (%s) | %.1f (%s) | %.1f | %sx |\n' "$size" "$ours_rate" "$ours_tiles" "$peer1_rate" \
    "$peer_tiles" "$peerN_rate" "$ratio"
done
