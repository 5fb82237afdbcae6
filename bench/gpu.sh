#!/usr/bin/env bash
# On a GPU node with a CUDA PyTorch wheel: build histotrain against the wheel's LibTorch, run the
# CUDA tests, the mixed-precision benchmark (fp32/bf16/fp16 x contiguous/channels-last) on the
# GPU, then the whole test suite.
#
#   bench/gpu.sh [LOG_DIR]
#
# PYTHON        the python that holds torch and torchvision (default: python3)
# DEPS_PREFIX   a folder holding TBB, TurboJPEG, CLI11, nlohmann-json and GoogleTest (headers,
#               libraries, CMake files) when the node has no system packages for them
# ACC_DATA      real tiles for the accuracy part (default ../shared/data/lc25000-dev-96)
# PEER          torch_reference.py (default ../shared/peers/torch_reference.py)
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-gpu-logs}
mkdir -p "$LOG"
export PYTHON=${PYTHON:-python3}
step() { echo; echo "== $(date -u +%T) $*"; }

step "node"
nvidia-smi -L

step "configure and build (LibTorch from the wheel)"
source bench/gpu_build.sh
gpu_build "$LOG" || exit 1

step "mixed-precision tests on CUDA"
export HISTOTRAIN_PYTHON=$PYTHON
build/tests/histotrain_unit_tests --gtest_filter='MixedPrecision.*:GradScaler.*:Autocast.*:Precision*' 2>&1 | tail -25

step "synthetic 256 px tiles for the throughput part"
synth=$(mktemp -d)
build/histotrain synth --out "$synth" --per-class 120 --size 256 --seed 1 --quiet

step "mixed-precision benchmark on the GPU"
DEVICE=cuda AMPS="none bf16 fp16" BATCH=${BATCH:-256} STEPS=${STEPS:-20} PEER_SIZES=${PEER_SIZES:-224} \
  PEER_WORKERS=${PEER_WORKERS:-8} bench/amp.sh "$synth" "${ACC_DATA:-../shared/data/lc25000-dev-96}" 2>&1 | tee "$LOG/amp.txt"

step "whole test suite"
ctest --test-dir build --output-on-failure -j 4 2>&1 | tee "$LOG/ctest.txt" | tail -30
