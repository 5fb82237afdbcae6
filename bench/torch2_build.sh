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
#                                         CUDA and LibTorch 2.x, unoptimised, in
#                                         build-torch2-cuda-units (what CI compiles; a few minutes)
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

# make's rule for one object, as "BUILD_MAKE OBJECT" (relative to $dir) per target that compiles
# it, read from the Makefile CMake wrote for the object's folder.
object_rules() {
  awk -v rule="$2.cpp.o:" '$1 == rule { inside = 1; next }
    inside && /^\t/ { for (i = 1; i < NF; i++) if ($i == "-f") print $(i + 1), $(i + 2); next }
    inside { exit }' "$1"
}

# Compiles each of cuda_units' files into its object, after the precompiled header they share;
# nothing is linked. The objects are compiled side by side through their targets' own makefiles:
# the Makefile CMake writes at the top is .NOTPARALLEL, so asking it for them compiles one at a time.
compile_cuda_units() {
  local rules=() file makefile object found count=0
  for file in $(cuda_units); do
    count=$((count + 1))
    case $file in
      src/*) makefile=$dir/Makefile object=${file%.cpp} ;;
      tests/*) makefile=$dir/tests/Makefile object=$(basename "${file%.cpp}") ;;
    esac
    found=$(object_rules "$makefile" "$object")
    [ -n "$found" ] || { echo "torch2_build: $file has no rule in $makefile" >&2; exit 1; }
    mapfile -t -O "${#rules[@]}" rules <<<"$found"
  done
  echo "== compiling the $count translation units that differ under CUDA (${#rules[@]} objects, $(nproc) jobs):"
  echo "   $(printf '%s\n' "${rules[@]}" | sed 's|.*/||' | tr '\n' ' ')"
  make -C "$dir" -s cmake_pch.hxx.gch
  printf '%s\n' "${rules[@]}" | xargs -P "$(nproc)" -L 1 make -s -C "$dir" -f
}

# A deliberate CUDA-only compile error fails in this build and only here: a file that stops under
# HISTOTRAIN_WITH_CUDA, compiled with the definitions of this build's train layer, must fail (so
# the units above were compiled with their CUDA side on), and with those of the Debian build in
# ./build, when there is one, must compile (so it is the CUDA side that fails).
check_cuda_only_error_fails() {
  local probe="$dir/cuda_only_error.cpp" defines
  printf '#ifdef HISTOTRAIN_WITH_CUDA\n#error "a deliberate CUDA-only compile error"\n#endif\nint main() { return 0; }\n' \
    >"$probe"
  defines_of() { sed -n 's/^CXX_DEFINES = //p' "$1/CMakeFiles/histotrain_train.dir/flags.make"; }
  defines=$(defines_of "$dir")
  # shellcheck disable=SC2086  # the definitions are separate words
  if ${CXX:-g++} $defines -fsyntax-only -x c++ "$probe" 2>"$dir/cuda_only_error.log"; then
    echo "torch2_build: a CUDA-only compile error compiled in $dir: its CUDA side is off" >&2
    exit 1
  fi
  grep -q "a deliberate CUDA-only compile error" "$dir/cuda_only_error.log" ||
    { cat "$dir/cuda_only_error.log" >&2; exit 1; }
  local where="fails in $dir, as it must"
  if [ -f build/CMakeFiles/histotrain_train.dir/flags.make ]; then
    defines=$(defines_of build)
    # shellcheck disable=SC2086
    ${CXX:-g++} $defines -fsyntax-only -x c++ "$probe" ||
      { echo "torch2_build: the probe fails in ./build too: it proves nothing" >&2; exit 1; }
    where+=", and compiles in build (no CUDA)"
  fi
  echo "== a deliberate CUDA-only compile error: $where"
}

# CUDA's toolkit where it usually is, when it is not on PATH already.
command -v nvcc >/dev/null || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH="/usr/local/cuda/bin:$PATH"
command -v nvcc >/dev/null ||
  { echo "torch2_build: no nvcc (CUDA 13's toolkit) on PATH or in /usr/local/cuda/bin: the CUDA build needs it" >&2; exit 1; }
python=$(bench/torch2_env.sh)
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
if [ "${UNITS:-}" = cuda ]; then
  # Only whether the units compile is asked: unoptimised and without debug information they
  # compile in a fraction of the time, in a folder of their own (a full build's stays Release).
  dir=${TORCH2_BUILD_DIR:-build-torch2-cuda-units}
  build_type=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0)
else
  dir=${TORCH2_BUILD_DIR:-build-torch2-cuda}
  build_type=(-DCMAKE_BUILD_TYPE=Release)
fi
echo "== configuring $dir: LibTorch $("$python" -c 'import torch; print(torch.__version__)'), $(nvcc --version | tail -1)"
# The torch folder first: its lib/ must win over a system LibTorch (CMakeLists.txt checks).
mkdir -p "$dir"
cmake -S . -B "$dir" "${build_type[@]}" -DCMAKE_PREFIX_PATH="$torch_dir;$torch_dir/share/cmake" \
  -DHISTOTRAIN_GLOO=OFF >"$dir/configure.log" 2>&1 || { tail -30 "$dir/configure.log"; exit 1; }
if grep -q "^C10_CUDA_LIBRARY:FILEPATH=.*libc10_cuda" "$dir/CMakeCache.txt"; then
  echo "   CUDA: on (HISTOTRAIN_WITH_CUDA: the CUDA allocator, NCCL, CUDA graphs, stages on devices)"
else
  echo "   CUDA: off (this LibTorch has no CUDA)"
fi
start=$(date +%s)
if [ "${UNITS:-}" = cuda ]; then
  compile_cuda_units
  check_cuda_only_error_fails
else
  targets=()
  for t in ${TARGETS:-}; do targets+=(--target "$t"); done
  echo "== building $dir ($(nproc) jobs)"
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
fi
echo "== $dir: done in $(( $(date +%s) - start )) s"
