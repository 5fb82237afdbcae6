#!/usr/bin/env bash
# A layer cannot include a layer above it: builds two probes as part of the data layer in the
# build folder $1. The one that includes only util/ and data/ headers must compile; the one that
# includes train/trainer.h must fail, and for that reason (the header is not found).
set -uo pipefail
build=$1
if ! cmake --build "$build" --target layering_probe_downward >/tmp/layering.$$.log 2>&1; then
  cat /tmp/layering.$$.log
  echo "FAIL: a data-layer file including util/ and data/ headers did not compile"
  exit 1
fi
if cmake --build "$build" --target layering_probe_upward >/tmp/layering.$$.log 2>&1; then
  echo "FAIL: a data-layer file including train/trainer.h compiled: the layers are not enforced"
  exit 1
fi
if ! grep -q "train/trainer.h: No such file or directory" /tmp/layering.$$.log; then
  cat /tmp/layering.$$.log
  echo "FAIL: the upward include failed for another reason than the layering"
  exit 1
fi
rm -f /tmp/layering.$$.log
echo "ok: data/ may include util/ and data/, and cannot include train/"
