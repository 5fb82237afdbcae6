#!/usr/bin/env bash
# Builds histotrain on a GPU node against the PyTorch wheel's CUDA LibTorch (Release, all cores).
# Sourced by bench/gpu.sh and bench/gpu_fast.sh; TARGETS limits what is built.
#
# PYTHON        the python that holds torch (default: python3)
# DEPS_PREFIX   a folder holding TBB, TurboJPEG, CLI11, nlohmann-json and GoogleTest (headers,
#               libraries, CMake files) when the node has no system packages for them
gpu_build() {  # LOG_DIR
  local log=$1 torch_prefix generator=()
  "${PYTHON:-python3}" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'
  g++ --version | head -1
  torch_prefix=$("${PYTHON:-python3}" -c 'import os, torch; print(os.path.dirname(torch.__file__) + ";" + torch.utils.cmake_prefix_path)')
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;${DEPS_PREFIX:-/usr}" >"$log/configure.log" 2>&1 ||
    { tail -40 "$log/configure.log"; return 1; }
  # Keep going past errors so that one build shows all of them.
  local targets=()
  for t in ${TARGETS:-}; do targets+=(--target "$t"); done
  if ! cmake --build build -j "$(nproc)" "${targets[@]}" -- -k 0 >"$log/build.log" 2>&1; then
    grep -E "error|Error" "$log/build.log" | head -60
    return 1
  fi
  build/histotrain --version
}
