#!/usr/bin/env bash
# Makes (once) and prints the path of a virtual environment holding PyTorch 2.11.0 and
# torchvision 0.26.0 from PyPI: the GPU nodes' PyTorch, here the peer the benchmarks compare with
# beside Debian's 1.13, and the LibTorch that `run.sh test` builds histotrain against a second time
# (CPU, and the CUDA configuration compiled without a GPU). PyPI's Linux wheel is the CUDA 13 build
# with its NVIDIA libraries (several GB); it runs on CPUs too.
#
#   bench/torch2_env.sh            make build-torch2 if missing, print its python
#   TORCH2_VENV=DIR bench/torch2_env.sh    another folder
#
# The environment is made again when the pins below change. Progress goes to stderr; stdout has
# only the interpreter's path, so that scripts can say  PEER=$(bench/torch2_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# openslide-python: the slide peer (bench/slide.sh --peer-python), on Debian's libopenslide.
PINS=(torch==2.11.0 torchvision==0.26.0 numpy pillow openslide-python)
venv=${TORCH2_VENV:-build-torch2}
stamp=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$stamp" ]; then
  echo "== making $venv: ${PINS[*]} from PyPI (several GB, once)" >&2
  start=$(date +%s)
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir "${PINS[@]}" >&2
  echo "$stamp" > "$venv/.pins"
  echo "== $venv made in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)" >&2
fi
"$venv/bin/python" -c 'import torch, torchvision' >&2 ||
  { echo "torch2_env: $venv does not import torch; remove it and run again" >&2; exit 1; }
echo "$PWD/$venv/bin/python"
