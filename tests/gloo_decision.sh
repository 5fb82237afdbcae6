#!/usr/bin/env bash
# The Gloo decision is made at configure time and reaches the compiler as a definition, so that
# no cache (ccache included) hands back an object built under the other decision:
#   1. the build under test lists gloo;
#   2. a build configured -DHISTOTRAIN_GLOO=OFF does not;
#   3. the same folder reconfigured with the default (AUTO) lists gloo again, with ccache on;
#   4. with no Gloo headers where it looks, configuring fails and names the package to install.
#   tests/gloo_decision.sh SOURCE_DIR BUILD_DIR HISTOTRAIN_BINARY
# BUILD_DIR sits beside the main build folder, at the same depth (build-gloo-decision), so that
# ccache finds the main build's objects (and its precompiled header) for every file but the one
# the decision changes: a few minutes instead of a whole build.
set -euo pipefail
src=$1 toggle=$2 exe=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
backends() { "$1" --version | sed -n 's/.*backends \([a-z ]*\),.*/\1/p'; }
configure() {  # FOLDER FLAGS...
  local dir=$1; shift
  cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DHISTOTRAIN_BUILD_TESTS=OFF -DHISTOTRAIN_BUILD_BENCH=OFF "$@"
}
build() { cmake --build "$1" --target histotrain -j "$(nproc)" >"$1/build.log" 2>&1 || { tail -30 "$1/build.log"; fail "build in $1"; }; }

command -v ccache >/dev/null || fail "ccache is not installed (run.sh installs it): the check is about ccache"
[ "$(backends "$exe")" = gloo ] || fail "the build under test lists backends '$(backends "$exe")', not gloo"
echo "1. $exe: backends $(backends "$exe")"

configure "$toggle" -DHISTOTRAIN_GLOO=OFF >"$work/configure-off.log" 2>&1 || { cat "$work/configure-off.log"; fail "configure OFF"; }
grep -q "Gloo: no" "$work/configure-off.log" || fail "configure OFF did not say 'Gloo: no'"
build "$toggle"
[ "$(backends "$toggle/histotrain")" = none ] || fail "-DHISTOTRAIN_GLOO=OFF built backends '$(backends "$toggle/histotrain")'"
echo "2. HISTOTRAIN_GLOO=OFF: backends $(backends "$toggle/histotrain")"

configure "$toggle" -DHISTOTRAIN_GLOO=AUTO >"$work/configure-auto.log" 2>&1 || { cat "$work/configure-auto.log"; fail "configure AUTO"; }
build "$toggle"
[ "$(backends "$toggle/histotrain")" = gloo ] || fail "reconfigured AUTO in the same folder built backends '$(backends "$toggle/histotrain")'"
echo "3. the same folder, HISTOTRAIN_GLOO=AUTO: backends $(backends "$toggle/histotrain")"

# The headers looked for where there are none (an empty folder named as GLOO_INCLUDE_DIR): what a
# machine without libgloo-dev gives, short of removing the package while other tests run.
mkdir -p "$work/no-gloo"
if configure "$work/hidden" -DGLOO_INCLUDE_DIR="$work/no-gloo" >"$work/configure-hidden.log" 2>&1; then
  fail "configuring with no Gloo headers in GLOO_INCLUDE_DIR succeeded"
fi
grep -q "libgloo-dev" "$work/configure-hidden.log" || { cat "$work/configure-hidden.log"; fail "the configure error does not name libgloo-dev"; }
grep -q "HISTOTRAIN_GLOO=OFF" "$work/configure-hidden.log" || fail "the configure error does not say how to build without Gloo"
echo "4. no Gloo headers: configuring fails and names libgloo-dev"
