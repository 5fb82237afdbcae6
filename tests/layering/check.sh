#!/usr/bin/env bash
# A layer cannot include a layer above it: builds two probes as part of the data layer in the
# build folder $1. The one that includes only util/ and data/ headers must compile; those that
# include leakage/ (the next layer up) or train/ must fail, and for that reason (the header is not found).
set -uo pipefail
build=$1
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
echo "ok: data/ may include util/ and data/, and cannot include leakage/ (the layer above) or train/"
