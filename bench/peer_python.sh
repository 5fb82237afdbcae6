# Sourced by the benchmark scripts that run a Python peer, after their `cd`: `--peer-python PY`
# among the script's arguments (or PEER_PYTHON in the environment) names the interpreter that runs
# the peer, e.g. PyTorch 2.11's (PEER_PYTHON=$(bench/torch2_env.sh)); the default is Debian's
# /usr/bin/python3 with PyTorch 1.13. Sets PEER_PYTHON, PEER_TORCH (its torch version) and ARGS
# (the script's arguments without the option):
#   source bench/peer_python.sh "$@"; set -- "${ARGS[@]+"${ARGS[@]}"}"
PEER_PYTHON=${PEER_PYTHON:-/usr/bin/python3}
ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    --peer-python)
      [ $# -ge 2 ] || { echo "$0: --peer-python needs an interpreter" >&2; exit 2; }
      PEER_PYTHON=$2
      shift 2 ;;
    --peer-python=*) PEER_PYTHON=${1#*=}; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
PEER_TORCH=$("$PEER_PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null) ||
  { echo "$0: $PEER_PYTHON cannot import torch (--peer-python: an interpreter with torch and torchvision)" >&2; exit 2; }
