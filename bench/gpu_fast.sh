#!/usr/bin/env bash
# The GPU fast path on a CUDA node, in one pass that fits a short lease: build against the
# wheel's LibTorch; check the CUDA-graph step against the eager one; time-to-accuracy against
# torch_fast_recipe.py on three group-held-out splits of the lung tiles (the peer's own splits);
# train-step images/s against Python eager; data-parallel and pipeline runs on the GPU and the
# host's cores; torch.compile last. Each section is skipped when the time budget runs short.
#
#   bench/gpu_fast.sh LOG_DIR
#
# DATA96       the 96 px tiles with groups.csv (default ../shared/data/lc25000-dev-96)
# PEER_DIR     torch_fast_recipe.py and torch_reference.py (default ../shared/peers)
# BUDGET_S     seconds this script may take (default 540)
# SEEDS        split seeds (default "0 1 2")
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-gpu-logs}
mkdir -p "$LOG"
export PYTHON=${PYTHON:-python3}
DATA96=${DATA96:-../shared/data/lc25000-dev-96}
PEER_DIR=${PEER_DIR:-../shared/peers}
BUDGET=${BUDGET_S:-540}
SEEDS=${SEEDS:-0 1 2}
LUNG=$DATA96/lung_colon_image_set/lung_image_sets
WORK=$(mktemp -d)
CACHE=$WORK/cache
START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }
section() {  # NAME SECONDS_NEEDED
  echo; echo "== $(date -u +%T) $1 ($(left) s left)"
  [ "$(left)" -ge "$2" ] || { echo "skipped: needs about $2 s"; return 1; }
}
field() { "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

section "node" 0
nvidia-smi -L; echo "$(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p')"

section "build" 0
source bench/gpu_build.sh
export TARGETS="histotrain throughput_bench histotrain_unit_tests"
if ! gpu_build "$LOG"; then
  echo "build failed; again without the CUDA-graph step"
  cmake -S . -B build -DHISTOTRAIN_CUDA_GRAPHS=OFF >>"$LOG/configure.log" 2>&1
  gpu_build "$LOG" || exit 1
fi

if section "CUDA tests: graph step vs eager step, batches, mixed precision" 60; then
  HISTOTRAIN_CACHE=$WORK/test-cache timeout 120 build/tests/histotrain_unit_tests \
    --gtest_filter='FastPath.*:BatchMaker.*:MixedPrecision.*:GradScaler.*' 2>&1 | grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) |Failure|error" | tee "$LOG/tests.txt"
fi

# Recipes: the peer's own (20 epochs, lr 0.4, batch 256, 25% warm-up, label smoothing 0.1), then
# with the weight average and test-time augmentation, then with colour jitter on top.
declare -A RECIPES=(
  [same]="--epochs 20 --warmup-epochs 5 --max-shift 0.084"
  [ema_tta]="--epochs 20 --warmup-epochs 5 --max-shift 0.084 --ema 0.99 --tta"
  [ema_tta_jitter]="--epochs 20 --warmup-epochs 5 --max-shift 0.084 --ema 0.99 --tta --color-jitter 0.1"
  [ema_tta_jitter_30]="--epochs 30 --warmup-epochs 7.5 --max-shift 0.084 --ema 0.99 --tta --color-jitter 0.1"
)
if section "time to accuracy: histotrain vs torch_fast_recipe.py, lung tiles 96 px, the peer's grouped splits" 150; then
  echo "who recipe seed train_s wall_s val_acc single_view_acc" >"$LOG/accuracy.txt"
  for seed in $SEEDS; do
    "$PYTHON" bench/peer_split.py --data "$DATA96/lung_colon_image_set" --groups "$DATA96/groups.csv" \
      --classes lung_aca,lung_n,lung_scc --split-seed "$seed" >"$WORK/val-$seed.txt"
    t0=$SECONDS
    r=$(timeout 90 "$PYTHON" "$PEER_DIR/torch_fast_recipe.py" --data "$DATA96/lung_colon_image_set" \
          --groups "$DATA96/groups.csv" --classes lung_aca,lung_n,lung_scc --split-seed "$seed" --seed "$seed" \
          --epochs 20 2>"$LOG/peer-$seed.err" | sed -n 's/^RESULT //p')
    echo "$r" >"$WORK/peer-$seed.json"
    [ -n "$r" ] && echo "peer fast_recipe $seed $(field "$WORK/peer-$seed.json" "d['train_s'], $((SECONDS - t0)), d['tta_acc'], d['val_acc']" | tr -d '(),')" | tee -a "$LOG/accuracy.txt"
    for recipe in same ema_tta ema_tta_jitter ema_tta_jitter_30; do
      [ "$(left)" -ge 40 ] || { echo "out of time"; break 2; }
      out=$WORK/run-$recipe-$seed
      t0=$(date +%s.%N)
      timeout 120 build/histotrain train --device cuda --data "$LUNG" --val-images "$WORK/val-$seed.txt" \
        --image-size 96 --amp bf16 --channels-last --batch-size 256 --lr 0.4 --seed "$seed" ${RECIPES[$recipe]} \
        --val-every 100 --cache-dir "$CACHE" --quiet --out "$out" >/dev/null 2>"$out.log" || { tail -5 "$out.log"; continue; }
      wall=$("$PYTHON" -c "print($(date +%s.%N) - $t0)")
      echo "histotrain $recipe $seed $(field "$out/summary.json" "round(d['train_s'],2), round($wall,2), round(d['val']['accuracy'],4), round(d['val'].get('accuracy_single_view', d['val']['accuracy']),4)" | tr -d '(),')" | tee -a "$LOG/accuracy.txt"
      [ "$seed" = "$(echo $SEEDS | cut -d' ' -f1)" ] && grep -E "captured|warning|data ready|epoch (20|30)/" "$out.log"
    done
  done
  echo "(peer columns: train_s, wall_s, tta_acc in the val_acc column, plain val_acc in the single-view column)"
fi

if section "train-step images/s: histotrain CUDA graph vs Python eager, bf16 channels-last, batch 256" 70; then
  for size in 64 96 128 224; do
    timeout 60 build/bench/throughput_bench --data "$LUNG" --images 0 --sizes "$size" --threads-list 16 --amp-list bf16 \
      --formats channels_last --steps 50 --batch-size 256 --device cuda --graph --cache-dir "$CACHE" | grep '^graph'
  done | tee "$LOG/throughput.txt"
  timeout 40 build/bench/throughput_bench --data "$LUNG" --images 0 --sizes 96 --threads-list 16 --amp-list bf16 \
    --formats channels_last --steps 30 --batch-size 256 --device cuda --cache-dir "$CACHE" | grep '^train' | tee -a "$LOG/throughput.txt"
  timeout 60 "$PYTHON" bench/torch_step_bench.py --compile-sizes "" | tee -a "$LOG/throughput.txt"
fi

if section "data parallel on the GPU: NCCL with one rank (launch, torchrun), Gloo with 2 ranks on one GPU" 60; then
  common=(--data "$LUNG" --val-images "$WORK/val-0.txt" --image-size 96 --amp bf16 --channels-last --epochs 1 --max-steps 30 --cache-dir "$CACHE" --quiet)
  # Whole logs, not tails: a failure's first lines say why.
  timeout 40 build/histotrain launch -n 1 -- train --device cuda --backend nccl --batch-size 256 "${common[@]}" --out "$WORK/nccl1" >"$LOG/nccl1.log" 2>&1
  timeout 40 torchrun --no-python --nproc_per_node 1 build/histotrain train --device cuda --backend nccl --batch-size 256 "${common[@]}" --out "$WORK/torchrun1" >"$LOG/torchrun1.log" 2>&1
  if build/histotrain --version | grep -q gloo; then
    timeout 40 build/histotrain launch -n 2 -- train --device cuda:0 --backend gloo --batch-size 128 "${common[@]}" --out "$WORK/gloo2" >"$LOG/gloo2.log" 2>&1
  fi
  grep -hiE "error|failed|exception" "$LOG"/nccl1.log "$LOG"/torchrun1.log 2>/dev/null | head -20
  for r in nccl1 torchrun1 gloo2; do
    [ -f "$WORK/$r/summary.json" ] && echo "$r: $(field "$WORK/$r/summary.json" "d['backend'], d['launcher'], d['world_size'], round(d['steps']*d['global_batch']/d['train_s']), 'img/s', round(d['val']['accuracy'],4)")"
  done | tee "$LOG/gpu-ddp.txt"
fi

if build/histotrain --version | grep -q gloo && section "CPU data parallel, weak scaling: ResNet-18 64 px, 32 images per rank, 1 thread per rank" 90; then
  timeout 30 build/histotrain train --data "$LUNG" --image-size 64 --epochs 1 --max-steps 1 --val-images "$WORK/val-0.txt" --cache-dir "$CACHE" --quiet --out "$WORK/warm64" >/dev/null 2>&1
  for ranks in 1 2 4 8 16; do
    [ "$(left)" -ge 25 ] || break
    timeout 60 build/histotrain launch -n "$ranks" --threads-per-rank 1 -- train --data "$LUNG" --val-images "$WORK/val-0.txt" \
      --image-size 64 --batch-size 32 --epochs 1 --max-steps 20 --cache-dir "$CACHE" --quiet \
      --out "$WORK/cpu-$ranks" >/dev/null 2>"$WORK/cpu-$ranks.log" || { tail -3 "$WORK/cpu-$ranks.log"; continue; }
    echo "histotrain $ranks $(field "$WORK/cpu-$ranks/summary.json" "round(d['steps']*d['global_batch']/d['train_s'],1), round(d['step_times_ms']['backward'],1), round(d['step_times_ms']['allreduce'],1), round(d['step_times_ms']['exposed'],1)" | tr -d '(),')"
  done | tee "$LOG/cpu-ddp.txt"
fi

if section "pipeline stages on the GPU: 2 stages on cuda:0,cuda:0, 4 micro-batches" 30; then
  timeout 40 build/histotrain train --device cuda --devices cuda:0,cuda:0 --pipeline-stages 2 --micro-batches 4 \
    --data "$LUNG" --val-images "$WORK/val-0.txt" --image-size 96 --batch-size 256 --epochs 1 --max-steps 20 \
    --cache-dir "$CACHE" --quiet --out "$WORK/pipe" 2>&1 | grep -vE "^\{" | tail -4 | tee "$LOG/pipeline.txt"
fi

if section "torch.compile at 96 px" 100; then
  timeout 100 "$PYTHON" bench/torch_step_bench.py --sizes "" --compile-sizes 96 | tee -a "$LOG/throughput.txt"
fi
echo; echo "== done in $((SECONDS - START)) s"
