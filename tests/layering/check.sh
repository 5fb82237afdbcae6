#!/usr/bin/env bash
# A layer includes only the layers it uses. First, every layer's generated probe (tests/CMakeLists.txt):
# __has_include of one header of each layer must be true exactly for the layers it sees. Then real
# includes as part of the data layer in the build folder $1: one of util/ and data/ headers must
# compile; those of leakage/ (which uses data) and train/ must fail, because the header is not found.
set -uo pipefail
build=$1
if ! cmake --build "$build" --target layering_probes >/tmp/layering.$$.log 2>&1; then
  grep -E "#error|error:" /tmp/layering.$$.log | head -20
  echo "FAIL: a layer can include a layer it does not use, or cannot include one it does"
  exit 1
fi
if ! cmake --build "$build" --target layering_probe_downward >/tmp/layering.$$.log 2>&1; then
  cat /tmp/layering.$$.log
  echo "FAIL: a data-layer file including util/ and data/ headers did not compile"
  exit 1
fi
# Each probe above data/ must fail, and for that reason (its header is not found).
for probe in "layering_probe_upward train/trainer.h" "layering_probe_next_layer leakage/group_finder.h"; do
  read -r target header <<<"$probe"
  if cmake --build "$build" --target "$target" >/tmp/layering.$$.log 2>&1; then
    echo "FAIL: a data-layer file including $header compiled: the layers are not enforced"
    exit 1
  fi
  if ! grep -q "$header: No such file or directory" /tmp/layering.$$.log; then
    cat /tmp/layering.$$.log
    echo "FAIL: the include of $header failed for another reason than the layering"
    exit 1
  fi
done
rm -f /tmp/layering.$$.log
echo "ok: every layer sees exactly the layers it uses; data/ may include util/ and data/, and cannot include leakage/ or train/"
