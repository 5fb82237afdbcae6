#!/usr/bin/env bash
# histotrain's entry point on a Debian 12 machine. Each command installs what is missing first.
#
#   ./run.sh demo    install, build, then synthesize tiles, train, evaluate, predict a slide (a few minutes, 2 cores)
#   ./run.sh test    install, build, run every test (ctest: unit, end-to-end, and the build's Gloo
#                    decision), then the unit tests under ASan + UBSan, then compiles the code that
#                    differs under CUDA against PyPI's LibTorch 2.11 (no GPU needed)
#   ./run.sh build   install and build only
#   ./run.sh bench   install, build, run the foundation benchmark (with the Python peer)
set -euo pipefail
cd "$(dirname "$0")"

# Everything the build, the tests, the demo and the benchmarks use beyond a bare Debian 12:
#   build       cmake make g++ pkg-config ccache, LibTorch, TBB, CLI11, nlohmann-json, GoogleTest
#   decoders    TurboJPEG, libpng, libtiff, libwebp, stb_image (BMP): tiles in any of those formats
#   libgloo-dev Gloo's headers: data parallelism and pipeline stages on CPUs (cmake/gloo.cmake)
#   libjemalloc-dev  the allocator that keeps a step's buffers between steps (faster steps)
#   libopenblas0-openmp  the BLAS behind Debian's LibTorch (libblas.so.3): without it the reference
#               BLAS runs, ~20x slower, and the GEMM convolution weight gradients do not pay
#   python3-*   the torchvision parity test and the Python peer in the benchmarks;
#               python3-sklearn checks the evaluation metrics against scikit-learn's
#   gnuplot-nox the study report's plots
#   imagemagick the format tests convert real and synthetic tiles to PNG, TIFF, BMP and WebP variants
#   libonnx-dev `histotrain export --onnx` writes ONNX through ONNX's own protobuf classes and checker
#   libopenslide-dev  whole slides (every format OpenSlide reads): `tile`, `predict --slide`;
#               python3-openslide and python3-shapely: the slide peer, and the GeoJSON read back
#   python3-venv the tests' virtual environment (build-venv: onnx, onnxruntime, tensorboard from PyPI,
#               tests/python-requirements.txt), and PyTorch 2.11's (bench/torch2_env.sh)
#   python3-dev torch.compile's C++ kernels on CPUs include Python.h (the PyTorch 2.11 peer)
PACKAGES=(cmake make g++ pkg-config ccache
          libtorch-dev libturbojpeg0-dev libpng-dev libtiff-dev libwebp-dev libstb-dev libtbb-dev libcli11-dev nlohmann-json3-dev libgtest-dev libgloo-dev
          libjemalloc-dev libopenblas0-openmp python3-torch python3-torchvision python3-numpy python3-pil python3-sklearn gnuplot-nox
          imagemagick libonnx-dev python3-venv python3-dev libopenslide-dev python3-openslide python3-shapely)
JOBS=$(nproc)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  install_missing
  echo "== building (Release, $JOBS jobs)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j "$JOBS"
}

demo() {
  build
  local bin=build/histotrain dir=demo
  rm -rf "$dir/run" "$dir/slide_predictions"  # a finished slide is skipped when predicted again
  echo "== 1/5 synthesizing 1,000 training tiles (5 classes, groups of 2 near-copies)"
  $bin synth --out "$dir/tiles" --per-class 200 --size 256 --seed 1
  echo "== 2/5 synthesizing 200 independent test tiles (other scenes, other seed)"
  $bin synth --out "$dir/test" --per-class 40 --size 256 --seed 2 --copies 1
  echo "== 3/5 training ResNet-18 at 64 px on CPU (validation on held-out groups every epoch)"
  $bin train --data "$dir/tiles" --groups "$dir/tiles/groups.csv" --cache-dir "$dir/cache" \
       --image-size 64 --epochs 8 --batch-size 32 --out "$dir/run" >/dev/null
  echo "Run folder: $dir/run (model.safetensors, checkpoint.json, metrics.jsonl, summary.json)."
  echo "Predict: $bin predict --checkpoint $dir/run $dir/test/lung_colon_image_set/lung_image_sets/lung_n/lungn1.jpeg"
  echo "== 4/5 evaluating the trained model on the independent test tiles (chance: 20%; 95% intervals by"
  echo "       bootstrap over the test set's source scenes)"
  $bin eval --checkpoint "$dir/run" --data "$dir/test" --groups "$dir/test/groups.csv" --cache-dir "$dir/cache" \
       --predictions "$dir/test_predictions.csv" --quiet
  echo "== 5/5 a synthetic whole slide (five regions, glass, pen, dust, a fold) predicted tile by tile"
  $bin synth --slide --width 8192 --height 6144 --seed 3 --out "$dir/slide" --quiet
  # The model saw 256-px tiles at 64 px: a tile covers 256 level-0 pixels (0.5 um) read at 2 um/px.
  $bin predict --checkpoint "$dir/run" --slide "$dir/slide/slide-1.tif" --tile-size 64 --mpp 2.0 \
       --out "$dir/slide_predictions" --quiet
  echo "Pictures: $dir/slide_predictions/slide-1/overlay.png (predicted classes), heatmap_<class>.png,"
  echo "evidence_<class>.png (each class's most confident tiles, Grad-CAM over each),"
  echo "tissue.png; the true regions: $dir/slide/slide-1.geojson. QuPath imports predictions.geojson."
}

# The tests' Python packages from PyPI (tests/python-requirements.txt) in build-venv, made once and
# made again when the requirements change; never in the system's Python.
TEST_VENV=build-venv
make_test_venv() {
  local stamp
  stamp=$(sha256sum tests/python-requirements.txt | cut -c1-16)
  if [ ! -x "$TEST_VENV/bin/python" ] || [ "$(cat "$TEST_VENV/.requirements" 2>/dev/null)" != "$stamp" ]; then
    echo "== making $TEST_VENV (tests/python-requirements.txt from PyPI)"
    rm -rf "$TEST_VENV"
    /usr/bin/python3 -m venv "$TEST_VENV"
    "$TEST_VENV/bin/pip" install -q --disable-pip-version-check -r tests/python-requirements.txt
    echo "$stamp" > "$TEST_VENV/.requirements"
  fi
}

# Runs "$@" in the background, its output into LOG; `finish_background PID LOG` waits for it,
# shows the output, and stops the script if it failed.
start_background() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  BACKGROUND_PID=$!
}
finish_background() {
  local status=0
  wait "$1" || status=$?
  cat "$2"
  [ "$status" -eq 0 ] || { echo "== failed: see $2" >&2; exit "$status"; }
}

run_tests() {
  install_missing
  # The two virtual environments are downloads and unpacking, not compiling: they are made while
  # the build compiles (a few minutes saved on a fresh machine).
  mkdir -p build
  start_background build/test-venv.log make_test_venv
  local test_venv=$BACKGROUND_PID
  start_background build/torch2-venv.log bench/torch2_env.sh
  local torch2_venv=$BACKGROUND_PID
  trap "kill $test_venv $torch2_venv 2>/dev/null || true" EXIT
  build
  finish_background "$test_venv" build/test-venv.log
  export HISTOTRAIN_TEST_VENV="$PWD/$TEST_VENV"
  finish_background "$torch2_venv" build/torch2-venv.log
  trap - EXIT
  echo "== testing"
  # Every package installed above must be used, not skipped for: a test that would skip for a
  # missing one fails instead (tests/test_util.h, packages_required).
  HISTOTRAIN_REQUIRE_PACKAGES=1 ctest --test-dir build --output-on-failure -j 2
  sanitized_unit_tests
  libtorch2_cuda_units
}

# The GPU nodes' build: PyPI's LibTorch 2.11 with CUDA 13 (bench/torch2_env.sh makes its virtual
# environment once). Here the translation units whose code differs under CUDA and LibTorch 2.x
# are compiled with CUDA on and this machine's nvcc (no GPU needed), so that a CUDA-only error
# fails the tests; the whole build and its unit tests on the CPU take 30 minutes more on 2 cores:
# bench/torch2_build.sh, then ctest --test-dir build-torch2-cuda -L unit (docs/building.md).
libtorch2_cuda_units() {
  UNITS=cuda bench/torch2_build.sh
}

# The unit tests again, built with AddressSanitizer and UndefinedBehaviorSanitizer (in
# build-sanitize; ccache makes the rebuild cheap after the first one).
sanitized_unit_tests() {
  echo "== building the unit tests with ASan + UBSan"
  cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DHISTOTRAIN_SANITIZE=ON -DHISTOTRAIN_BUILD_BENCH=OFF >/dev/null
  cmake --build build-sanitize -j "$JOBS" --target histotrain_unit_tests
  echo "== unit tests under ASan + UBSan"
  # Leak checking is off: LibTorch keeps process-lifetime allocations it never frees.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-sanitize --output-on-failure -j 2 -L unit
}

bench() {
  build
  bench/foundation.sh "$@"
}

case "${1:-}" in
  demo) demo ;;
  test) run_tests ;;
  build) build ;;
  bench) shift; bench "$@" ;;
  *) echo "usage: $0 demo|test|build|bench" >&2; exit 2 ;;
esac
