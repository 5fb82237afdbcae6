#!/usr/bin/env bash
# Builds histotrain against PyPI's LibTorch 2.11 (the wheel bench/torch2_env.sh installs), in
# build-torch2-cuda: the CUDA configuration the GPU nodes run, compiled and linked with this
# machine's nvcc and CUDA libraries; no GPU is needed to build it, and it runs on CPUs too.
# `./run.sh test` calls it with UNITS=cuda.
#
#   bench/torch2_build.sh                 every target (CUDA on where the wheel has it): over
#                                         20 minutes on 2 cores; then its unit tests on the CPU:
#                                         ctest --test-dir build-torch2-cuda -L unit
#   TARGETS="histotrain" bench/torch2_build.sh
#   UNITS=cuda bench/torch2_build.sh      only the translation units whose code differs under
#                                         CUDA and LibTorch 2.x (what CI compiles; a few minutes)
#
# The wheel ships no Gloo headers, so this build has no data parallelism or pipeline stages
# between ranks on CPUs (NCCL on GPUs only): configured with -DHISTOTRAIN_GLOO=OFF rather than
# with Debian's Gloo headers, which need not match the Gloo compiled into the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
# The sources whose compiled code changes with CUDA or LibTorch 2.x: those that test the build's
# macros themselves, and those that include a header that does (core/compat.h). Found by looking,
# so a new file with CUDA code is compiled here without a list to keep.
cuda_units() {
  local pattern='HISTOTRAIN_WITH_CUDA|USE_C10D_NCCL|HISTOTRAIN_TORCH_AT_LEAST|HISTOTRAIN_NO_CUDA_GRAPHS' h
  {
    grep -rlE "$pattern" src tests --include=*.cpp
    for h in $(grep -rlE "$pattern" src --include=*.h); do grep -rlF "#include \"${h#src/}\"" src tests --include=*.cpp; done
  } | sort -u
}

# Compiles each of cuda_units' files into its object (make's per-object rules), after the
# precompiled header they use; nothing is linked.
compile_cuda_units() {
  local objects=() test_objects=() file
  for file in $(cuda_units); do
    case $file in
      src/*) objects+=("${file%.cpp}.o") ;;
      tests/*) test_objects+=("$(basename "${file%.cpp}").o") ;;
    esac
  done
  echo "== compiling the ${#objects[@]} + ${#test_objects[@]} translation units that differ under CUDA ($(nproc) jobs):"
  echo "   ${objects[*]} ${test_objects[*]}"
  make -C "$dir" -s cmake_pch.hxx.gch
  make -C "$dir" -s -j "$(nproc)" "${objects[@]}"
  make -C "$dir/tests" -s -j "$(nproc)" "${test_objects[@]}"
}

# CUDA's toolkit where it usually is, when it is not on PATH already.
command -v nvcc >/dev/null || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH="/usr/local/cuda/bin:$PATH"
command -v nvcc >/dev/null ||
  { echo "torch2_build: no nvcc (CUDA 13's toolkit) on PATH or in /usr/local/cuda/bin: the CUDA build needs it" >&2; exit 1; }
python=$(bench/torch2_env.sh)
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
dir=${TORCH2_BUILD_DIR:-build-torch2-cuda}
echo "== configuring $dir: LibTorch $("$python" -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"
# The torch folder first: its lib/ must win over a system LibTorch (CMakeLists.txt checks).
mkdir -p "$dir"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_dir;$torch_dir/share/cmake" \
  -DHISTOTRAIN_GLOO=OFF >"$dir/configure.log" 2>&1 || { tail -30 "$dir/configure.log"; exit 1; }
if grep -q "^C10_CUDA_LIBRARY:FILEPATH=.*libc10_cuda" "$dir/CMakeCache.txt"; then
  echo "   CUDA: on (HISTOTRAIN_WITH_CUDA: the CUDA allocator, NCCL, CUDA graphs, stages on devices)"
else
  echo "   CUDA: off (this LibTorch has no CUDA)"
fi
start=$(date +%s)
if [ "${UNITS:-}" = cuda ]; then
  compile_cuda_units
else
  targets=()
  for t in ${TARGETS:-}; do targets+=(--target "$t"); done
  echo "== building $dir ($(nproc) jobs)"
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
fi
echo "== $dir: done in $(( $(date +%s) - start )) s"
